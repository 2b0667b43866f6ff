// AttributionResult: the one type every engine produces (gradient methods, perturbation over a
// local model or over HTTP) and every writer consumes (table, csv, json, html).
//
// Rows are output tokens (generated or teacher-forced), columns are input units (tokens,
// words, sentences, custom spans) of the text the outputs were attributed to. A column that is
// not before a row's token holds 0. No torch here: writers and the API engine do not need it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pizza {

// One column: a unit of the input. For token units token_ids has one id; word/sentence/span
// units list the ids of the tokens they cover (may be empty for black-box word units).
struct InputUnit {
  std::string text;        // the unit's bytes in the original text (display string for specials)
  size_t begin = 0;        // byte span [begin, end) in AttributionResult::text
  size_t end = 0;
  std::vector<int32_t> token_ids;
  bool special = false;    // BOS or other special token (no span in the text)
  bool generated = false;  // an earlier output token (gradient methods attribute to those too)
};

// One row: an output token whose score/probability is being explained.
struct OutputToken {
  int32_t id = -1;         // -1 when the backend gives no ids (black-box text outputs)
  std::string text;        // decoded bytes of the token
  std::optional<double> prob;  // model probability of this token at its position, if known
};

// A dense row-major rows x cols matrix with a name (the metric or target it holds).
struct ScoreMatrix {
  std::string name;
  size_t rows = 0;
  size_t cols = 0;
  std::vector<double> values;
  double at(size_t r, size_t c) const { return values[r * cols + c]; }
  double& at(size_t r, size_t c) { return values[r * cols + c]; }
};

struct Timings {
  double load_ms = 0;
  double generate_ms = 0;
  double attribute_ms = 0;
  int64_t peak_rss_bytes = 0;  // the process's resident-memory high-water mark when the run ended (0: unknown)
  // Local gradient and perturbation runs (0 elsewhere): the --max-memory budget, the rows per
  // backward (perturbed prompts per forward) it allowed, and the estimated peak at that size.
  // Timings, not parameters: they follow from the machine, and results do not depend on them.
  int64_t memory_budget_bytes = 0;
  int64_t rows_per_pass = 0;
  int64_t estimated_peak_bytes = 0;
};

struct RunInfo {
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;
  std::string blas;  // e.g. "OpenBLAS 0.3.21 (SkylakeX)"
};

struct AttributionResult {
  std::string tool_version;
  std::string model_path;
  std::string model_type;
  std::string engine;   // "local" or "api"
  std::string method;   // e.g. "saliency", "integrated-gradients", "occlusion"
  std::string target;   // e.g. "prob", "logprob", "prob-diff"
  std::string unit = "token";
  // Every other parameter of the run, in order: name -> JSON-serialised value.
  std::vector<std::pair<std::string, std::string>> parameters;

  std::string text;            // the prompt the columns' spans refer to
  std::string output_text;     // generated (or target) continuation, decoded
  std::vector<InputUnit> inputs;      // columns
  std::vector<OutputToken> outputs;   // rows

  // matrices[0] is the primary result; several metrics of one run add more (same shape).
  std::vector<ScoreMatrix> matrices;

  // Optional per-row diagnostics, e.g. {"target_value", ...}, {"completeness_gap", ...}.
  std::vector<std::pair<std::string, std::vector<double>>> row_stats;

  Timings timings;
  RunInfo run;
  // Optional serialised JSON (an experiment log, server metadata) embedded verbatim.
  std::vector<std::pair<std::string, std::string>> extra_json;

  const ScoreMatrix& matrix() const { return matrices.at(0); }
};

// Refuses a result holding a value that is not finite: an InputError whose one line names the
// first bad cell (matrices in order, then row statistics, then output probabilities) by matrix
// or statistic name, row index and output text, column index and input unit text. NaN or
// infinity means the model or the arithmetic broke (non-finite weights, an overflow), and a
// report of it would be read as an attribution. Every writer calls it (report::render), so no
// engine's result reaches a table, file or batch record without passing it.
void require_finite(const AttributionResult& result);

// What identifies how a result was made, as (field, JSON text) pairs in a fixed order:
// "model.path", "model.model_type", "engine", "method", "target", "unit", "parameters.<name>"
// for each parameter, "run.device", "run.dtype". Threads, BLAS, timings and the tool version
// are left out: they change how fast, not what is computed (up to float rounding, see README).
// `pizza diff` reports the fields that changed; batch --resume refuses to mix runs that differ.
std::vector<std::pair<std::string, std::string>> run_identity(const AttributionResult& result);

// Per-input totals of a matrix: the mean over output rows (PIZZA's total_attribution).
std::vector<double> column_totals(const ScoreMatrix& m);

}  // namespace pizza
