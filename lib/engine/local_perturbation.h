// `pizza local --method occlusion|hierarchical`: the perturbation engine over the local model.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/chat.h"
#include "engine/local_backend.h"
#include "model/model.h"
#include "perturbation/engine.h"
#include "result/attribution_result.h"
#include "units/units.h"

namespace pizza {

struct LocalPerturbationRequest {
  std::string prompt;
  std::optional<std::string> target_text;  // teacher-forced only
  std::optional<std::vector<int64_t>> output_ids;  // teacher-forced only: the explained output's ids
  std::optional<std::string> contrast_text;        // teacher-forced only: the foil (engine.foil)
  int64_t max_new_tokens = 16;
  // algorithm, scoring (default teacher-forced), metrics, hierarchical options, progress; the
  // embeddings fields are filled here.
  perturbation::EngineOptions engine;
  perturbation::StrategySpec strategy;
  UnitSpec unit;
  LocalBackendOptions backend;
  // --embeddings: another model's table for nth-nearest and cosine (default: the model's own).
  const LanguageModel* embeddings = nullptr;
  // --chat: the prompt is the user's message in the model's chat template; only it is perturbed.
  std::optional<ChatOptions> chat;
  // --max-memory in bytes, weights included; nullopt: the default (engine/local.h memory_budget).
  std::optional<int64_t> max_memory;
};

// Whether two tokenizers number the same tokens the same way (so ids carry over).
bool same_vocabulary(const Tokenizer& a, const Tokenizer& b);

// The embedding table nth-nearest and cosine use (another model's with --embeddings), built
// (normalised) only when the strategy or a metric needs it. Ids are shared with the units'
// tokenizer when both number tokens identically (and, with `id_limit`, the table fits the
// model that consumes the ids); otherwise text is re-encoded in the table's vocabulary.
struct EmbeddingChoice {
  std::unique_ptr<LocalEmbeddings> table;
  bool shared_vocab = false;
};
EmbeddingChoice choose_embeddings(const LanguageModel& source, const Tokenizer* units_tokenizer,
                                  const perturbation::StrategySpec& strategy, std::span<const perturbation::Metric> metrics,
                                  std::optional<int64_t> id_limit = std::nullopt);

// The explained output as the perturbation engine sees it: the tokens' bytes and ids (log-probs
// unset).
perturbation::Generation forced_output(const Tokenizer& tok, const std::vector<int64_t>& prompt,
                                       const std::vector<int64_t>& ids);

AttributionResult run_local_perturbation(const LanguageModel& lm, const LocalPerturbationRequest& req);

}  // namespace pizza
