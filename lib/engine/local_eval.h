// `pizza eval` over a local model: runs each attribution method on a prompt (all explaining the
// same output), then scores every method's perturbations in one prefix-sharing batch of the
// local backend (lib/eval does the metrics). Also evaluates attributions written earlier.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/local.h"
#include "engine/local_perturbation.h"
#include "diff/diff.h"
#include "eval/report.h"

namespace pizza {

struct LocalEvalRequest {
  // Method names: gradient methods, "occlusion", "hierarchical", "random".
  std::vector<std::string> methods;
  // Option templates of the two engines (target, norm, ig steps, metric, ...); the prompt,
  // method, units and output are set per call.
  LocalRequest gradient;
  LocalPerturbationRequest perturbation;
  UnitSpec unit;
  perturbation::StrategySpec strategy;  // how eval removes units (also the perturbation methods')
  int64_t max_batch = 16;               // perturbed prompts per forward pass when scoring
  eval::Options options;
  // Called after each method and after scoring: (steps done, steps of this prompt).
  std::function<void(size_t, size_t)> progress;
};

// The methods `pizza eval` runs by default: every gradient and perturbation method, plus random.
std::vector<std::string> default_eval_methods();
// UsageError naming the method and listing the known ones.
void check_eval_methods(const std::vector<std::string>& methods);

// Evaluates one prompt. `prompt_seed` varies the LDS masks and random scores between prompts.
eval::PromptRecord evaluate_local(const LanguageModel& lm, const LocalEvalRequest& req, const std::string& prompt,
                                  const std::optional<std::string>& target_text, int64_t max_new_tokens,
                                  uint64_t prompt_seed);

// Attributions written earlier (pizza local or pizza api JSON), grouped by prompt: one group
// per distinct prompt text (first-seen order), one entry per results record of that prompt.
// `label` is the record's method, or "method (file)" when two files hold the same method.
struct SavedAttribution {
  std::string label;
  const diff::Record* record = nullptr;
};
std::vector<std::vector<SavedAttribution>> group_saved_results(const std::vector<diff::ResultsFile>& files);

// Evaluates one prompt's saved attributions: its prompt, its units (by byte span) and its
// explained output (by token id when the file has ids, else the output text tokenized by the
// model's tokenizer). The `random` baseline is added when req.methods contains it. InputError
// when a record does not fit the model (ids that are not the model's tokens), the records of a
// prompt disagree on units or output, or there is no prompt unit.
eval::PromptRecord evaluate_saved(const LanguageModel& lm, const LocalEvalRequest& req,
                                  const std::vector<SavedAttribution>& saved, uint64_t prompt_seed);

}  // namespace pizza
