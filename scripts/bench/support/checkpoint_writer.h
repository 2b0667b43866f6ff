// Safetensors checkpoints written by the bench programs (scripts/bench/*.cpp) and the tests
// (tests/model/weights_load_test.cpp): the one writer of test and bench checkpoints, kept out of
// lib/ because the product never writes weights. Target pizza_checkpoint_writer.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pizza::test {

// One tensor of a safetensors file. dtype: torch::kFloat32 ("F32"), kBFloat16 ("BF16"),
// kFloat16 ("F16") or kFloat64 ("F64").
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  torch::ScalarType dtype;
};

// Writes `file`: the header for `specs` (padded with spaces to 8 bytes), then each tensor's data
// in order, make(spec) called for one tensor at a time, so that only one is ever in memory.
// make must return a tensor of the spec's shape and dtype (else std::logic_error).
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& specs,
                       const std::function<torch::Tensor(const TensorSpec&)>& make);

// Writes the tensors as they are, each under its name with its own shape and dtype.
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

// A Llama-architecture decoder's shape (Hugging Face names).
struct LlamaShape {
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0, vocab = 0;
  bool tied = true;                          // tie_word_embeddings: no lm_head.weight
  torch::ScalarType dtype = torch::kFloat32;  // kFloat32 or kBFloat16
};

// DIR/model.safetensors of random weights (torch::manual_seed(0), then N(0, 0.02) drawn in file
// order, norms at 1, rounded to shape.dtype) and DIR/config.json (max_position_embeddings 2048,
// rms_norm_eps 1e-5, rope_theta 10000, bos 1, eos 2); no tokenizer. Deterministic: the same
// shape gives the same bytes.
void write_random_llama(const std::filesystem::path& dir, const LlamaShape& shape);

}  // namespace pizza::test
