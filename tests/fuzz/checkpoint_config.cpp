// libFuzzer target: a model directory's config.json, and its generation_config.json (the part
// of the input after "\n@@@\n", when present), through load_model_config.
#include <cstdint>

#include "checkpoint/model_config.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto [config, generation] = pizza::fuzz::split_two(pizza::fuzz::as_text(data, size));
  dir.write("config.json", config);
  if (generation.empty())
    dir.remove("generation_config.json");
  else
    dir.write("generation_config.json", generation);
  try {
    const pizza::ModelConfig c = pizza::load_model_config(dir.path());
    // Derived values the loader must have made safe to compute.
    (void)c.rotary_dim();
    for (int64_t layer = 0; layer < std::min<int64_t>(c.num_layers, 64); ++layer) {
      (void)c.layer_uses_sliding_window(layer);
      (void)c.layer_uses_experts(layer);
    }
  } catch (const pizza::InputError&) {
  }
  return 0;
}
