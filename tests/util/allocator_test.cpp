#include <catch2/catch.hpp>

#include <cstdlib>
#include <malloc.h>

#include "util/allocator.h"

// glibc's mallinfo2 tells how many bytes sit in mmap'd blocks: without the tuning a block of a
// few MB is one of them (glibc's default threshold is 128 KiB), with it the block comes from the
// heap, whose freed space is then reused instead of being unmapped and faulted in again.
TEST_CASE("keep_freed_tensor_memory serves tensor-sized blocks from the reusable heap") {
  constexpr size_t kBlock = 6u << 20;  // a [16, 48, 1536] float32 activation is 4.7 MB
  const auto mapped_before = mallinfo2().hblkhd;
  pizza::keep_freed_tensor_memory();
  void* p = std::malloc(kBlock);
  REQUIRE(p != nullptr);
  CHECK(mallinfo2().hblkhd - mapped_before < kBlock);
  std::free(p);
  // Freed, it stays mapped in the heap for the next allocation.
  CHECK(mallinfo2().fordblks >= kBlock);
}
