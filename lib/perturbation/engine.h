// The perturbation attribution engine, the same for every backend: occlusion (leave one unit
// out) and PIZZA's hierarchical perturbation, scored free-running or teacher-forced with one
// or more metrics, plus a JSON experiment log of every perturbation.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "perturbation/backend.h"
#include "perturbation/metrics.h"
#include "perturbation/perturb.h"
#include "result/attribution_result.h"

namespace pizza::perturbation {

enum class Algorithm { occlusion, hierarchical, context_cite };
enum class Scoring { teacher_forced, free_running };

Algorithm parse_algorithm(std::string_view name);  // "occlusion", "hierarchical", "context-cite"
// The perturbation method called `name`; nullopt for any other (a gradient method, "random").
std::optional<Algorithm> find_algorithm(std::string_view name);
std::string_view algorithm_name(Algorithm a);
Scoring parse_scoring(std::string_view name);      // "teacher-forced", "free-running"
std::string_view scoring_name(Scoring s);

struct HierarchicalOptions {
  std::optional<size_t> init_chunk_size;   // default max(2, F/2), F = number of units
  std::optional<size_t> stride;            // default max(1, chunk/2)
  std::optional<double> static_threshold;  // also split chunks whose |score| exceeds this
  std::optional<int> max_depth;            // default: until nothing splits
};

// ContextCite: `ablations` random masks (each unit kept with probability keep_prob, seeded), a
// Lasso of the output's score on the masks. Teacher-forced, the score of output token t is the
// logit of its probability, log p_t - log(1 - p_t); free-running (an API without echo), it is
// minus the first metric (prob-diff: p_perturbed - p_original). The last ceil(10%) of the
// ablations are held out to measure the surrogate's fit.
struct ContextCiteOptions {
  size_t ablations = 64;
  double keep_prob = 0.5;
  uint64_t seed = 0;
  double lasso_alpha = 0.01;
};
// UsageError for values a fit cannot use (fewer than 4 ablations, keep_prob outside (0, 1),
// a negative or non-finite alpha).
void check_context_cite(const ContextCiteOptions& o);

// The removed units of each of ContextCite's ablations (ascending), in order; the last
// ceil(10%) are the held-out ones.
std::vector<std::vector<size_t>> context_cite_ablations(size_t units, const ContextCiteOptions& o);

// The surrogate of one target (an output token, or the whole output).
struct SurrogateFit {
  std::vector<double> weights;  // per unit
  double intercept = 0;
  double held_out_spearman = 0;  // of predictions vs scores on the held-out ablations
};

// PIZZA stops refining when no unit has accumulated more than this (its MIN_MAXIMUM_THRESHOLD).
inline constexpr double kMinMaximumThreshold = 0.01;

struct EngineOptions {
  Algorithm algorithm = Algorithm::occlusion;
  std::optional<Scoring> scoring;  // default: teacher-forced when the backend can score
  std::vector<Metric> metrics{Metric::prob_diff};  // the first one drives hierarchical splits
  bool ignore_output_location = true;
  HierarchicalOptions hierarchical;
  ContextCiteOptions context_cite;
  const TokenEmbeddings* embeddings = nullptr;  // for the cosine metric
  bool shared_vocab = false;                    // backend ids index `embeddings`
  // --contrast-text (teacher-forced only): one foil id per output token. Metrics then score the
  // change of the target-minus-foil margin (teacher_forced_scores), and ContextCite regresses
  // log p(y) - log p(foil) instead of the logit of p(y).
  std::vector<int32_t> foil;
  std::function<void(size_t, size_t)> progress;  // (perturbations done, known so far)
};

// The chunks (unit index lists, ascending) of PIZZA's first hierarchical stage: windows of
// `chunk` units every `stride` units, starting stride/2 units before the first unit.
std::vector<std::vector<size_t>> initial_chunks(size_t units, size_t chunk, size_t stride);

// One evaluated perturbation.
struct Evaluation {
  std::vector<size_t> units;  // masked units
  int depth = 0;
  Prompt prompt;
  std::string output_text;
  std::vector<std::vector<double>> scores;  // [metric][output token]
  std::vector<double> logprobs;             // teacher-forced: of each output token
  std::vector<double> foil_logprobs;        // contrastive: of each foil token at the same position
};

struct EngineResult {
  Scoring scoring = Scoring::teacher_forced;
  Generation original;                // the explained output, with its log-probabilities
  std::vector<ScoreMatrix> matrices;  // one per metric: rows = output tokens, cols = units
  // Hierarchical: per-unit cumulative scores of the first metric (PIZZA's return value; equal
  // to the column means of matrices[0]) and the chunks evaluated at each depth.
  std::vector<double> cumulative;
  std::vector<std::vector<std::vector<size_t>>> chunks_by_depth;
  std::vector<Evaluation> evaluations;
  // ContextCite: one fit per output token (their weights are matrices[0]'s rows) and one for
  // the whole output (score: logit of the product of the tokens' probabilities).
  std::vector<SurrogateFit> row_fits;
  std::optional<SurrogateFit> sequence_fit;
  size_t model_calls = 0;  // prompts sent to the backend, the original included
  double duration_ms = 0;
  std::string experiment_log;  // JSON object
};

// Runs the algorithm. `original_output`: the output to explain (token ids/texts); when absent
// the backend's greedy completion of the unperturbed prompt. Free-running needs the
// completion's top-k log-probabilities, so it ignores `original_output` (UsageError if given).
// Moves an engine result into the fields every perturbation run reports: method, target (the
// first metric), the matrices (moved out of er) and the attribution time.
void apply_engine_result(EngineResult& er, const EngineOptions& opts, AttributionResult& result);

// The run's metric names as a JSON array, for AttributionResult::parameters.
std::string metrics_json(const std::vector<Metric>& metrics);

EngineResult run_engine(PerturbationBackend& backend, const Perturber& perturber, const EngineOptions& opts,
                        const std::optional<Generation>& original_output = std::nullopt);

}  // namespace pizza::perturbation
