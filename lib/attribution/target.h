// Targets ("step functions"): the scalar differentiated for one output row, computed from the
// logits of a copy of the sequence. Kept separate from the attribution methods, so every
// method works with every target.
#pragma once

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <vector>

namespace pizza {

struct Target {
  std::string name;
  std::string description;
  // Needs the logits of every position up to pos (else only those at pos are computed).
  bool needs_all_positions = false;
  // logits [B, L, V]; pos [B] = index of the position that predicts each copy's token;
  // tokens [B] = the token whose score is explained. Returns [B] (one scalar per copy).
  torch::Tensor (*fn)(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens);
};

// prob (default), logprob, logit, pizza-legacy.
const std::vector<Target>& targets();
// UsageError listing the valid names when unknown.
const Target& find_target(std::string_view name);

}  // namespace pizza
