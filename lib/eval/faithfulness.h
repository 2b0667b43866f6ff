// Faithfulness of attributions: does removing the units a method calls important change the
// model's output the way the method says it should? Scores one prompt's attributions (from any
// method, engine or results file) with deletion, insertion, ABPC, top-k drop and the linear
// datamodeling score. Torch-free: the model is reached only through a ScoreFn that returns the
// teacher-forced log-probabilities of the explained output for a set of removed units, so the
// same code runs over a local model, an HTTP server or a test fake.
//
// Definitions (README's "pizza eval" section states them the same way):
//   f(S) = mean over output tokens t of p(y_t | prompt without S, y_<t);  L(S) = sum_t log p(...).
//   Ranking: units by the column sum of the method's matrix, highest first (ties: lower index
//   first). Level::token ranks by each row and scores only that row's token, averaged over rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pizza::eval {

enum class Metric { deletion, insertion, abpc, topk, lds };
enum class Level { sequence, token };

// "deletion,insertion,abpc,topk,lds" (any subset, comma-separated); UsageError names the bad one.
std::vector<Metric> parse_metrics(std::string_view csv);
std::string_view metric_name(Metric m);
Level parse_level(std::string_view name);  // "sequence" | "token"
std::string_view level_name(Level l);
// Whether a higher value of the metric means a more faithful method (deletion: lower is better).
bool higher_is_better(Metric m);

struct Options {
  std::vector<Metric> metrics{Metric::deletion, Metric::insertion, Metric::abpc, Metric::topk, Metric::lds};
  std::vector<size_t> k{1, 3, 5};  // top-k drop; a k above the number of units removes them all
  size_t ablations = 64;           // lds masks
  double keep_prob = 0.5;          // lds: probability that a mask keeps a unit
  Level level = Level::sequence;
  uint64_t seed = 0;
};
// UsageError for an empty metric list, k = 0, ablations < 2 with lds, keep_prob outside (0, 1).
void check_options(const Options& o);

// One method's attribution of one prompt: `draws` matrices of rows (output tokens) x units
// (the prompt's perturbable units, in text order). A deterministic method has one draw; the
// random baseline has several, and its metrics are the mean over draws.
struct MethodScores {
  std::string method;
  size_t rows = 0, units = 0;
  std::vector<std::vector<double>> draws;  // each rows * units, row-major
  double time_ms = 0;      // attribution time of the method for this prompt
  size_t model_calls = 0;  // forward (+ backward) passes or prompts the method needed
};

// The random baseline's draws per prompt: its metrics are the mean over this many seeds.
inline constexpr size_t kRandomDraws = 10;

// `count` matrices of uniform random scores in [0, 1), reproducible from `seed` on every
// platform (mt19937_64's raw output, not a library distribution).
MethodScores random_scores(size_t rows, size_t units, size_t count, uint64_t seed);

// Units ordered by score, highest first; ties keep the lower index first.
std::vector<size_t> ranking(std::span<const double> scores);
// The k at which deletion/insertion curves are evaluated: 0..U, or 21 evenly spaced values
// round(i * U / 20) when U > 20.
std::vector<size_t> curve_points(size_t units);
// Trapezoid area under y against x (x ascending).
double trapezoid(std::span<const double> x, std::span<const double> y);
// Student's t quantile t_{0.975, df} (two-sided 95%), df >= 1.
double t_quantile_975(size_t df);

// Log-probabilities of each output token (size rows) for each set of removed units (indices,
// ascending, unique). Called once per prompt with every distinct set.
using ScoreFn = std::function<std::vector<std::vector<double>>(const std::vector<std::vector<size_t>>& removed)>;

struct Curve {
  std::vector<double> x;  // k / U
  std::vector<double> f;
};

struct MethodEval {
  std::string method;
  std::optional<double> deletion, insertion, abpc, lds;
  std::vector<std::pair<size_t, double>> topk;  // (k as asked, drop)
  Curve deletion_curve, insertion_curve;        // averaged over draws (and rows at token level)
  std::vector<size_t> ranking;                  // sequence-level ranking of the first draw
  double time_ms = 0;
  size_t model_calls = 0;
};

struct PromptEval {
  size_t units = 0, rows = 0;
  std::vector<double> original_logprobs;  // of each output token with nothing removed
  std::vector<MethodEval> methods;         // in the order given
  size_t scored_sets = 0;                  // distinct perturbed prompts scored
  std::vector<std::vector<bool>> lds_masks;  // [ablation][unit]: kept (for reproducing LDS)
};

// Scores every method on one prompt. All methods' perturbations (and the LDS masks, shared by
// every method) are collected first, duplicates dropped, and scored in one `score` call.
// `prompt_seed` makes the LDS masks differ between prompts (reproducibly).
PromptEval evaluate_prompt(std::span<const MethodScores> methods, const Options& opts, const ScoreFn& score,
                           uint64_t prompt_seed);

}  // namespace pizza::eval
