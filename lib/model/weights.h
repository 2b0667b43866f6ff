// From checkpoint tensors to the model's canonical parameters.
//
// The decoder's modules ask for weights by canonical names ("embed.weight",
// "layers.3.attn.q.weight", "lm_head.weight", ...). A family's WeightMap says where each one
// lives in the Hugging Face checkpoint and how to transform it (transpose a GPT-2 Conv1D,
// slice a fused qkv projection), so the model code never sees HF key names.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"

namespace pizza {

// Where a canonical parameter comes from.
struct WeightSource {
  std::string key;             // HF tensor name
  bool transpose = false;      // stored [in, out] (GPT-2 Conv1D)
  int64_t row_begin = -1;      // take rows [row_begin, row_end) of dim 0 (fused projections)
  int64_t row_end = -1;
};

// Maps a canonical name to its source; nullopt when the family has no such tensor.
using WeightMap = std::function<std::optional<WeightSource>(const std::string& canonical)>;

WeightMap weight_map_for(const ModelConfig& cfg, const checkpoint::Checkpoint& ck);

// Zero-copy view (F32 into F32, aligned) or converted copy of a checkpoint tensor.
torch::Tensor tensor_from_view(const checkpoint::TensorView& view, torch::Dtype dtype, const torch::Device& device);

// What modules pull their parameters from.
class ParamSource {
 public:
  ParamSource(const checkpoint::Checkpoint& ck, WeightMap map, torch::Dtype dtype, torch::Device device)
      : ck_(ck), map_(std::move(map)), dtype_(dtype), device_(device) {}

  // Throws InputError naming the missing checkpoint tensor.
  torch::Tensor get(const std::string& canonical) const;
  // Empty tensor when the family or checkpoint has none (e.g. optional biases).
  torch::Tensor maybe(const std::string& canonical) const;
  bool has(const std::string& canonical) const;

 private:
  torch::Tensor load(const WeightSource& src, const std::string& canonical) const;

  const checkpoint::Checkpoint& ck_;
  WeightMap map_;
  torch::Dtype dtype_;
  torch::Device device_;
};

}  // namespace pizza
