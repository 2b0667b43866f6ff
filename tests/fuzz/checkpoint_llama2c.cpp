// libFuzzer target: a llama2.c checkpoint (.bin: 7 int32 header fields, then float32 arrays).
// Input layout as in checkpoint_safetensors: the file's first bytes, then 4 bytes
// (little-endian) giving the length of a sparse zero tail (below 64 MiB), so the fuzzer works
// on the header and the file size it implies rather than on megabytes of weights.
#include <cstdint>

#include "checkpoint/llama2c.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto file = dir.write_with_tail("model.bin", data, size);
  if (file.empty()) return -1;
  try {
    pizza::checkpoint::Llama2cFile f(file);
    (void)f.config();
    for (const auto& t : f.tensors())
      if (t.nbytes > 0) (void)(t.data[0] + t.data[t.nbytes - 1]);
  } catch (const pizza::InputError&) {
  }
  return 0;
}
