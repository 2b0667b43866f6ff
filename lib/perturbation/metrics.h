// Per-output-token scores of one perturbation: how much the original output changed.
// Free-running metrics compare the perturbed prompt's own greedy completion with the original
// one (what an API gives); teacher-forced metrics read the exact probability of the original
// output tokens after the perturbed prompt.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "perturbation/backend.h"

namespace pizza::perturbation {

enum class Metric { prob_diff, logprob_diff, cosine, token_displacement };

// Logprob PIZZA assumes for a token missing from the top-k alternatives.
inline constexpr double kAbsentLogprob = -100.0;

// "prob-diff,cosine" -> metrics in order, no duplicates; UsageError for unknown names.
std::vector<Metric> parse_metrics(std::string_view csv);
std::string_view metric_name(Metric m);
// prob-diff and logprob-diff; cosine and token-displacement need a completion.
bool teacher_forceable(Metric m);
// UsageError naming the first metric that is not teacher-forceable.
void require_teacher_forceable(std::span<const Metric> metrics);

struct FreeRunningContext {
  bool ignore_output_location = true;           // PIZZA's default
  const TokenEmbeddings* embeddings = nullptr;  // for cosine
  bool shared_vocab = false;                    // generation ids index the embeddings
};

// One score per original output token.
std::vector<double> free_running_scores(Metric m, const Generation& original, const Generation& perturbed,
                                        const FreeRunningContext& ctx);
// original_lp / perturbed_lp: log-probabilities of the original output tokens. Contrastive
// (foil log-probabilities at the same positions given, else empty): the change of the
// target-minus-foil margin, prob-diff (p_y - p_f)(original) - (p_y - p_f)(perturbed) and
// logprob-diff (lp_y - lp_f)(original) - (lp_y - lp_f)(perturbed).
std::vector<double> teacher_forced_scores(Metric m, std::span<const double> original_lp, std::span<const double> perturbed_lp,
                                          std::span<const double> original_foil_lp = {},
                                          std::span<const double> perturbed_foil_lp = {});

}  // namespace pizza::perturbation
