#include "attribution/target.h"

#include "model/grad_ops.h"
#include "util/error.h"

namespace pizza {

namespace {

// logits[b, pos[b], :] -> [B, V]
torch::Tensor at_positions(const torch::Tensor& logits, const torch::Tensor& pos) {
  return select_rows(logits, pos.view({-1, 1})).squeeze(1);
}

// values [B, V], tokens [B] -> values[b, tokens[b]]. The model/grad_ops versions keep the
// batched (vmap) backward of the fast gradient algorithm free of per-row loops.
torch::Tensor pick(const torch::Tensor& values, const torch::Tensor& tokens) { return pick_last(values, tokens); }

torch::Tensor prob(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens) {
  const auto l = at_positions(logits, pos);
  return pick(softmax_last(l, l.scalar_type()), tokens);
}

torch::Tensor logprob(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens) {
  return pick(log_softmax_last(at_positions(logits, pos)), tokens);
}

torch::Tensor logit(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens) {
  return pick(at_positions(logits, pos), tokens);
}

// PIZZA's formula: torch.softmax(logits, dim=1) on [1, L, V] normalises the token's logit over
// the L positions of the prefix, then takes the last one. Positions after pos[b] belong to
// other rows' longer prefixes and are masked out.
torch::Tensor pizza_legacy(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens) {
  const auto B = logits.size(0), L = logits.size(1);
  auto idx = tokens.view({B, 1, 1}).expand({B, L, 1});
  auto column = logits.gather(2, idx).squeeze(2);  // [B, L]
  auto j = torch::arange(L, torch::TensorOptions().dtype(torch::kLong).device(logits.device())).view({1, L});
  column = column.masked_fill(j > pos.view({B, 1}), -std::numeric_limits<double>::infinity());
  return pick(torch::softmax(column, -1), pos);
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> kTargets = {
      {"prob", "probability of the token (softmax over the vocabulary)", false, prob},
      {"logprob", "log-probability of the token", false, logprob},
      {"logit", "raw logit of the token", false, logit},
      {"pizza-legacy", "PIZZA's softmax over sequence positions (only to reproduce old PIZZA results)", true,
       pizza_legacy},
  };
  return kTargets;
}

const Target& find_target(std::string_view name) {
  std::string names;
  for (const auto& t : targets()) {
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  throw UsageError("--target: unknown value '" + std::string(name) + "' (expected " + names + ")");
}

}  // namespace pizza
