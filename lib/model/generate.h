// Greedy decoding with the KV cache, batched over left-padded prompts.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace pizza {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  std::vector<int64_t> stop_ids;  // generation of a row ends after one of these
};

struct Generation {
  std::vector<int64_t> tokens;  // new tokens (including a final stop token when one was produced)
  bool stopped = false;         // ended on a stop token rather than the length limit
};

// Left-pads prompts into one batch: ids [B,T] (pad id 0) and mask [B,T] (true = real token).
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& prompts);

std::vector<Generation> greedy_generate(const Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerateOptions& opts);

}  // namespace pizza
