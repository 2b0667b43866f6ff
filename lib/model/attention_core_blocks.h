// Query blocking of the attention core (internal: model/attention_core.cpp and its tests).
//
// Long prompts spend most of their time in the L x L part of attention, half of which the causal
// mask makes -inf. attention_core splits the queries into blocks of `rows` and gives each block
// only the keys some query of it can see (per the mask, for any batch row): the keys dropped get
// probability exactly 0, so the values are those of the single product up to float summation
// order. Below `min_area` queries x keys (every short prompt) it runs the single product.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>

#include "model/relevance.h"

namespace pizza {

struct AttentionBlocking {
  int64_t rows = 128;            // queries per block
  int64_t min_area = 1 << 18;    // T * S from which the queries are blocked (512 x 512)
};

// attention_core with an explicit blocking (tests compare blocked and single-product paths:
// min_area = INT64_MAX never blocks).
torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double scale, std::optional<double> softcap, Relevance rules,
                             AttentionBlocking blocking);

}  // namespace pizza
