// From checkpoint tensors to the model's canonical parameters.
//
// The decoder's modules ask for weights by canonical names ("embed.weight",
// "layers.3.attn.q.weight", "lm_head.weight", ...). A family's WeightMap says where each one
// lives in the Hugging Face checkpoint and how to transform it (transpose a GPT-2 Conv1D,
// slice a fused qkv projection), so the model code never sees HF key names.
//
// Canonical module names, per layer N ("layers.N." prefix), each with ".weight"/".bias":
//   attn_norm, mlp_norm, attn_out_norm, mlp_out_norm, attn.{q,k,v,o}, attn.{q_norm,k_norm},
//   mlp.{gate,up,down}, moe.router, moe.experts.E.{gate,up,down}, moe.shared.{gate,up,down},
//   moe.shared_gate
// and globally: embed, pos_embed, final_norm, lm_head.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/llama2c.h"
#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"

namespace pizza {

// Where a canonical parameter comes from. Transforms apply in this order: transpose (2-D
// tensors only), then the row slice.
struct WeightSource {
  std::string key;             // HF tensor name
  bool transpose = false;      // stored [in, out] (GPT-2 Conv1D)
  int64_t row_begin = -1;      // take rows [row_begin, row_end) of dim 0 (fused projections) ...
  int64_t row_end = -1;
  // ... of each of row_groups equal blocks of rows: GPT-NeoX stores its fused qkv per head as
  // [heads, (q|k|v), head_dim], so q is rows [0, hd) of each of `heads` blocks of 3*hd rows.
  int64_t row_groups = 1;
};

// Maps a canonical name to its source; nullopt when the family has no such tensor.
using WeightMap = std::function<std::optional<WeightSource>(const std::string& canonical)>;

// The named tensors a WeightMap resolves against: a safetensors checkpoint, or a llama2.c .bin
// presented under Hugging Face Llama names. Non-owning: the source must outlive it.
class TensorStore {
 public:
  TensorStore(const checkpoint::Checkpoint& ck);   // NOLINT(google-explicit-constructor)
  TensorStore(const checkpoint::Llama2cFile& f);   // NOLINT(google-explicit-constructor)

  const checkpoint::TensorView* find(std::string_view name) const { return find_(name); }
  // Throws InputError "missing tensor NAME in PATH" when absent.
  const checkpoint::TensorView& get(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::function<const checkpoint::TensorView*(std::string_view)> find_;
  std::filesystem::path path_;
};

WeightMap weight_map_for(const ModelConfig& cfg, const TensorStore& store);

// Zero-copy view (F32 into F32, aligned) or converted copy of a checkpoint tensor.
torch::Tensor tensor_from_view(const checkpoint::TensorView& view, torch::Dtype dtype, const torch::Device& device);

// dst = src converted to dst's dtype (same shape; src may be strided, e.g. transposed). On the
// CPU in parallel over libtorch's intra-op threads (--threads), in contiguous chunks: each
// source byte is read once and each destination byte written once. BF16 -> F32 is the exact
// widening (the 16 bits become the top half of the float).
void convert_into(torch::Tensor& dst, const torch::Tensor& src);

// What modules pull their parameters from.
class ParamSource {
 public:
  ParamSource(TensorStore store, WeightMap map, torch::Dtype dtype, torch::Device device)
      : store_(std::move(store)), map_(std::move(map)), dtype_(dtype), device_(device) {}

  // Throws InputError naming the missing checkpoint tensor.
  torch::Tensor get(const std::string& canonical) const;
  // Empty tensor when the family or checkpoint has none (e.g. optional biases).
  torch::Tensor maybe(const std::string& canonical) const;
  bool has(const std::string& canonical) const;

  // The named weights stacked by rows into one tensor of the compute dtype (a fused projection:
  // q|k|v, gate|up), each converted straight into its rows: one pass over the checkpoint and no
  // second copy. `check(part, canonical)` sees each part (checkpoint dtype, transforms applied)
  // before anything is converted. Throws as get() does.
  torch::Tensor stacked(const std::vector<std::string>& canonicals,
                        const std::function<void(const torch::Tensor&, const std::string&)>& check) const;

 private:
  // The checkpoint tensor with the source's transforms applied, in its own dtype: a view of the
  // mapping where possible (no bytes touched).
  torch::Tensor raw(const WeightSource& src, const std::string& canonical) const;
  // raw() in the compute dtype and device, contiguous: raw() itself when it already is (a
  // zero-copy view), else one converting pass. Whole untransformed tensors are converted once
  // however often they are asked for (a tied lm_head is the embedding).
  torch::Tensor load(const WeightSource& src, const std::string& canonical) const;

  TensorStore store_;
  WeightMap map_;
  torch::Dtype dtype_;
  torch::Device device_;
  mutable std::map<std::string, torch::Tensor> converted_;  // by checkpoint key
};

}  // namespace pizza
