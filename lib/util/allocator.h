// Process-wide tuning of the C allocator for tensor workloads.
#pragma once

#include <cstdint>

namespace pizza {

// libtorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold
// (128 KiB to start) with a fresh mmap and gives them back on free, so every activation of a
// few MB is page-faulted in (and zeroed by the kernel) again on each use; a vectorised backward
// pass allocates thousands of them. This keeps blocks up to 32 MiB (glibc's ceiling) in the
// heap and lets up to 1 GiB of freed heap stay mapped for reuse. Call once at start-up, before
// large allocations; no effect with other C libraries.
void keep_freed_tensor_memory();

// The most resident memory this process has had so far (the kernel's high-water mark, bytes).
int64_t peak_rss_bytes();

}  // namespace pizza
