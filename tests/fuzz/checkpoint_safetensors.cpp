// libFuzzer target: a safetensors file (8-byte header length, JSON header, data section).
// Input layout: the file's first bytes, then 4 bytes (little-endian) giving how many zero
// bytes follow them in the file (a sparse tail, below 64 MiB), so that seeds made from real
// checkpoints keep their header without carrying megabytes of weights into every mutation.
#include <cstdint>

#include "checkpoint/safetensors.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto file = dir.write_with_tail("model.safetensors", data, size);
  if (file.empty()) return -1;
  try {
    pizza::checkpoint::SafetensorsFile f(file);
    for (const auto& t : f.tensors()) {
      // Touch the first and last byte of every tensor: views must lie inside the mapping.
      if (t.nbytes > 0) (void)(t.data[0] + t.data[t.nbytes - 1]);
      (void)t.numel();
    }
  } catch (const pizza::InputError&) {
  }
  return 0;
}
