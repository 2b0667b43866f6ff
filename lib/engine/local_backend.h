// The local-model perturbation backend: teacher-forced scoring of many perturbed prompts in
// one batch that reuses the KV cache of the prefix they share with the unperturbed prompt,
// and KV-cached batched greedy completions with top-k log-probabilities. Plus the model's
// token embedding table for nth-nearest replacements and the cosine metric.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>
#include <string>
#include <unordered_map>

#include "model/model.h"
#include "perturbation/backend.h"

namespace pizza {

struct LocalBackendOptions {
  int64_t max_batch = 16;       // perturbed prompts per forward pass
  // Bytes a batch may take, the model's weights included (0: no bound but max_batch): batches
  // shrink until estimate_forward_memory fits; InputError when one prompt does not.
  int64_t max_memory = 0;
  // Held already against that budget (0: the model's weights; pizza's engines pass the
  // process's resident memory).
  int64_t resident_bytes = 0;
  int64_t max_new_tokens = 16;  // free-running completions
  int64_t top_k = 20;           // alternatives reported per generated token (as OpenAI's max)
  // A prompt given as text only is tokenized with special-token strings parsed (a rendered chat
  // template spells them).
  bool parse_special = false;
  std::vector<int64_t> stop_ids;  // completions also end at these (a chat template's end of turn)
};

// Estimated bytes of one no-grad forward over `tokens` positions (keys and queries alike) that
// reads logits at `logit_rows` of them: per prompt, the KV cache of every layer, the largest
// layer's transients (scores, masked scores and probabilities [H, T, T] in the softmax's dtype,
// the MLP's activations) and the logits with their float64 log-softmax.
int64_t estimate_forward_memory(const ModelConfig& cfg, torch::Dtype dtype, int64_t tokens, int64_t logit_rows);

class LocalBackend : public perturbation::PerturbationBackend {
 public:
  // reference: the unperturbed prompt's token ids; teacher-forced batches start from its cache.
  LocalBackend(const LanguageModel& lm, std::vector<int64_t> reference, LocalBackendOptions opts);

  std::vector<perturbation::Generation> complete(std::span<const perturbation::Prompt> prompts) override;
  bool can_score() const override { return true; }
  std::vector<std::vector<double>> score(std::span<const perturbation::Prompt> prompts,
                                         const perturbation::Generation& output) override;
  std::vector<ContrastLogprobs> score_contrast(std::span<const perturbation::Prompt> prompts,
                                               const perturbation::Generation& output,
                                               std::span<const int32_t> foil) override;
  std::string describe() const override;

  // Model forward passes so far (the reference prefix included).
  size_t forward_passes() const { return forward_passes_; }
  // The largest batch run so far and its estimated memory (weights included); 0 before any.
  int64_t rows_per_pass() const { return rows_per_pass_; }
  int64_t estimated_bytes() const { return estimated_bytes_; }

 private:
  std::vector<int64_t> ids_of(const perturbation::Prompt& p) const;
  // score() and score_contrast(): one batched forward; foil (empty: none) read at the same
  // positions from the same logits.
  std::vector<ContrastLogprobs> score_tokens(std::span<const perturbation::Prompt> prompts,
                                             const perturbation::Generation& output, std::span<const int32_t> foil);
  std::vector<perturbation::Generation> complete_batch(const std::vector<std::vector<int64_t>>& prompts);
  // Prompts per forward: max_batch, or fewer to fit max_memory at `tokens` positions each.
  size_t batch_size(int64_t tokens, int64_t logit_rows);

  const LanguageModel& lm_;
  std::vector<int64_t> reference_;
  LocalBackendOptions opts_;
  KVCache reference_cache_;  // filled on the first score() call
  size_t forward_passes_ = 0;
  int64_t weights_ = -1;  // weight_bytes, once needed
  int64_t rows_per_pass_ = 0, estimated_bytes_ = 0;
};

// A model's token embedding table, L2-normalised once (float32, on the model's device).
class LocalEmbeddings : public perturbation::TokenEmbeddings {
 public:
  LocalEmbeddings(const Tokenizer& tokenizer, const torch::Tensor& table);

  const Tokenizer& tokenizer() const override { return tokenizer_; }
  int32_t nth_nearest(int32_t id, int64_t n) const override;
  std::vector<double> cosine(std::span<const int32_t> a, std::span<const int32_t> b) const override;
  std::optional<int32_t> token_with_bytes(std::string_view bytes) const override;
  int64_t rows() const { return normed_.size(0); }

 private:
  torch::Tensor rows_of(std::span<const int32_t> ids) const;

  const Tokenizer& tokenizer_;
  torch::Tensor normed_;    // [V, D]
  torch::Tensor boundary_;  // [V] bool: the piece starts with a word-boundary marker
  torch::Tensor eligible_;  // [V] bool: a real (non-special) token of the tokenizer
  std::unordered_map<std::string, int32_t> by_bytes_;  // token bytes -> lowest id with them
};

// True when the piece starts with sentencepiece's "▁" or byte-level BPE's "Ġ".
bool starts_with_boundary_marker(std::string_view piece);

}  // namespace pizza
