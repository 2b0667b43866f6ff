#include "model/generate.h"

#include <algorithm>

#include "util/checked_math.h"
#include "util/error.h"

namespace pizza {

std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& prompts) {
  size_t T = 0;
  for (const auto& p : prompts) T = std::max(T, p.size());
  const auto B = static_cast<int64_t>(prompts.size());
  auto ids = torch::zeros({B, static_cast<int64_t>(T)}, torch::kLong);
  auto mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kBool);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<bool, 2>();
  for (size_t b = 0; b < prompts.size(); ++b) {
    const size_t off = T - prompts[b].size();
    for (size_t t = 0; t < prompts[b].size(); ++t) {
      ia[static_cast<int64_t>(b)][static_cast<int64_t>(off + t)] = prompts[b][t];
      ma[static_cast<int64_t>(b)][static_cast<int64_t>(off + t)] = true;
    }
  }
  return {ids, mask};
}

std::vector<Generation> greedy_generate(const Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerateOptions& opts) {
  torch::NoGradGuard no_grad;
  std::vector<Generation> out(prompts.size());
  if (prompts.empty() || opts.max_new_tokens <= 0) return out;
  for (const auto& p : prompts)
    if (p.empty()) throw InputError("cannot generate from an empty prompt (no tokens, not even BOS)");
  const auto max_pos = model.config().max_position_embeddings;

  auto [ids, mask] = left_pad(prompts);
  if (!fits_within(ids.size(1), opts.max_new_tokens, max_pos))
    throw InputError("prompt (" + std::to_string(ids.size(1)) + " tokens) + " + std::to_string(opts.max_new_tokens) +
                     " new tokens exceeds the model's context of " + std::to_string(max_pos) + " tokens");
  KVCache cache = model.new_cache(ids.size(0), ids.size(1) + opts.max_new_tokens);
  std::vector<bool> done(prompts.size(), false);
  auto dev = model.device();
  torch::Tensor step_ids = ids.to(dev), step_mask = mask.to(dev);
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    ForwardOptions fo;
    fo.attention_mask = step_mask;
    fo.cache = &cache;
    fo.last_only = true;
    auto logits = model.forward(model.embed(step_ids), fo);  // [B,1,V]
    auto next = logits.squeeze(1).argmax(-1).to(torch::kCPU);
    auto na = next.accessor<int64_t, 1>();
    bool all_done = true;
    for (size_t b = 0; b < prompts.size(); ++b) {
      if (done[b]) continue;
      const int64_t tok = na[static_cast<int64_t>(b)];
      out[b].tokens.push_back(tok);
      if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), tok) != opts.stop_ids.end()) {
        done[b] = true;
        out[b].stopped = true;
      }
      all_done = all_done && done[b];
    }
    if (all_done) break;
    step_ids = next.view({-1, 1}).to(dev);
    step_mask = torch::ones({static_cast<int64_t>(prompts.size()), 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  }
  return out;
}

}  // namespace pizza
