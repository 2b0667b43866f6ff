// How a model runs (device, dtype, threads, weight residency), as the command line spells it.
// Torch-free: the front end parses these without the engine (model/model.h applies them).
#pragma once

#include <string>

namespace pizza {

struct RuntimeOptions {
  std::string device = "cpu";     // cpu | cuda | cuda:N
  std::string dtype = "float32";  // float32 | float64 | bfloat16
  int threads = 0;                // 0 = every CPU in the process's affinity mask
  bool map_weights = true;        // false (--no-mmap): read weight files into memory at load
};

}  // namespace pizza
