// What `pizza eval` writes: the per-prompt faithfulness of every method and the aggregate
// over prompts (mean and 95% confidence interval), as a terminal table, JSON (schema:
// lib/eval/eval.schema.json), long-format CSV or a self-contained HTML page with the deletion
// and insertion curves drawn as inline SVG.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval/faithfulness.h"
#include "report/report.h"
#include "result/attribution_result.h"

namespace pizza::eval {

inline constexpr int kEvalSchemaVersion = 1;

struct PromptRecord {
  std::string id;  // the batch record's id, or its 1-based index
  std::string prompt;
  std::string output_text;
  std::vector<std::string> output_tokens;
  std::vector<std::string> units;             // unit texts, in text order
  std::vector<std::pair<size_t, size_t>> spans;  // their byte spans in `prompt`
  std::optional<std::string> error;           // the prompt failed: nothing else is set
  PromptEval eval;
  double score_ms = 0;  // scoring every method's perturbations of this prompt
};

struct EvalReport {
  std::string tool_version;
  std::string model;
  std::string engine;  // "local" or "api"
  std::string unit;
  std::string strategy;
  Options options;
  std::vector<std::string> methods;
  // Every other parameter: name -> JSON value.
  std::vector<std::pair<std::string, std::string>> parameters;
  RunInfo run;
  std::vector<PromptRecord> prompts;
  double total_ms = 0;
};

// One column of the aggregate table: a metric, or one k of the top-k drop.
struct Column {
  Metric metric;
  size_t k = 0;       // topk only
  std::string name;   // "deletion", "top-3", ...
};
std::vector<Column> columns(const Options& o);
// The value of a column in one method's evaluation (nullopt when not computed).
std::optional<double> column_value(const MethodEval& m, const Column& c);

struct Summary {
  double mean = 0;
  double ci95 = 0;  // half-width: t_{0.975, n-1} * sd / sqrt(n); 0 for n = 1
  size_t n = 0;     // prompts that contributed
};
// [method][column] over the prompts that did not fail.
std::vector<std::vector<Summary>> aggregate(const EvalReport& r);

// Renders the report. `color`: ANSI emphasis of each column's best value in the table.
std::string render(const EvalReport& r, report::Format format, bool color);

}  // namespace pizza::eval
