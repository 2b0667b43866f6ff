// `pizza diff`: compares two attribution result files (a baseline and a new run) and lists
// what drifted, for CI regression checks. Reads the JSON document the report writer produces
// (lib/report/attribution.schema.json) or JSON Lines of such records keyed by "id"; compares
// only what identifies a result (input units, output tokens, every score matrix by name and
// each row's top-k inputs) and ignores timings and run details.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "result/attribution_result.h"

namespace pizza::diff {

// The schema version this reader understands (report::kJsonSchemaVersion when it was written).
inline constexpr int64_t kSchemaVersion = 1;

// One result: a whole JSON document, or one line of a JSONL batch.
struct Record {
  std::string id;                    // "id" field; "" for a plain document without one
  size_t line = 0;                   // 1-based line in a JSONL file; 0 for a single document
  std::optional<std::string> error;  // set for a failed batch record {"id", "error"}
  // Everything the document holds, read back into the type the writers take, so that
  // `pizza render` shows it as the run did, diff compares it and eval re-scores it. Output
  // ids are -1 where the file has null; totals are not kept (column_totals recomputes them).
  // Only what diff compares is required (schema_version, inputs, outputs, matrix_name, matrix);
  // other fields keep their defaults when absent.
  AttributionResult result;
};

struct ResultsFile {
  std::string name;  // as given, for messages
  std::vector<Record> records;
};

// Reads a results file. Format by content: one JSON document when the first non-space byte is
// '{' and the whole file parses as a single value, otherwise JSON Lines (blank lines skipped).
// Throws InputError, one line naming the file, the line and the field, when the file is
// unreadable, not JSON/JSONL, has a duplicate id, or a record lacks what diff compares
// (schema_version other than kSchemaVersion, missing or ragged matrix, ...).
ResultsFile load_results(const std::filesystem::path& path);
// The same on contents already in memory; `name` is used in messages.
ResultsFile parse_results(std::string contents, std::string_view name);

// A score differs when |new - old| > atol + rtol * |old|.
struct Tolerance {
  double atol = 1e-4;
  double rtol = 1e-3;
};

struct Options {
  Tolerance tolerance{};  // every matrix, unless named in the maps below
  // Per metric (matrix name): `--atol prob=1e-5 --rtol grad=1e-2`. A name in neither file is
  // a UsageError (a typo would otherwise silently keep the default).
  std::map<std::string, double, std::less<>> atol_by_matrix{}, rtol_by_matrix{};
  size_t top_k = 3;     // compare each row's k most important inputs as a set; 0 disables
  // Spearman rank correlation of each row's scores (and of each matrix's totals) between the
  // two runs: below this it is a finding. Unset: not checked.
  std::optional<double> min_spearman{};
  bool ignore_ids = false;    // compare generated tokens by text only, never by token id
  bool allow_failed = false;  // a record that failed in both runs is not a finding
  // Findings kept (and printed) per record; the rest are only counted. 0 keeps all. Bounds
  // memory when a whole matrix drifts.
  size_t max_findings_per_record = 20;

  Tolerance tolerance_for(std::string_view matrix) const;
};
// Throws UsageError for a negative or non-finite tolerance, or a --min-spearman outside [-1, 1].
void check_options(const Options& options);

// Parses the values of --atol (or --rtol): each "VALUE" (every matrix) or "NAME=VALUE" (one
// matrix), several per value when comma-separated; the option may repeat. Sets `all` and
// `by_matrix`. UsageError naming `option` and the value when one does not parse or is < 0.
void parse_tolerances(std::string_view option, const std::vector<std::string>& values, double& all,
                      std::map<std::string, double, std::less<>>& by_matrix);

enum class Kind {
  missing_record,  // the id is in one file only
  error_changed,   // a record failed in one run only
  failed,          // a record failed in both runs (a finding unless allow_failed)
  input_count,     // number of input units differs
  input_text,      // an input unit's text differs
  output_count,    // number of generated tokens differs
  output_token,    // a generated token's text or id differs
  matrix_missing,  // a metric (matrix name) is in one record only
  score,           // a cell differs beyond tolerance
  top_k,           // a row's set of top-k inputs by |score| changed
  spearman,        // a row's (or the totals') rank correlation fell below min_spearman
};
std::string_view kind_name(Kind kind);

// An input unit named in a top-k set.
struct UnitRef {
  size_t index = 0;
  std::string text;
  bool operator==(const UnitRef&) const = default;
};

// What a finding compares: nothing (absent / null), a number, a text, a token, or a top-k set
// of input units (in rank order).
using Value = std::variant<std::monostate, double, std::string, OutputToken, std::vector<UnitRef>>;

struct Finding {
  Kind kind = Kind::score;
  std::string matrix;                  // score, top_k and matrix_missing
  std::optional<size_t> output_index;  // row (unset for a spearman finding on the totals)
  std::string output_token;
  std::optional<size_t> input_index;   // column
  std::string input_token;
  Value old_value;
  Value new_value;
};

struct RecordDiff {
  std::string id;
  size_t differences = 0;         // every difference found, kept or not
  std::vector<Finding> findings;  // the first Options::max_findings_per_record of them
};

// A run parameter or the model changed (run_identity fields): reported before the findings
// as context, since a changed parameter explains drift; not a finding by itself (a `pizza api`
// result and its `pizza local` equivalent differ in engine and model path, yet compare).
struct ParameterChange {
  std::string field;      // "model.path", "method", "parameters.norm", ...
  std::string old_value;  // JSON text as written ("\"l1\"", "20"); "" when absent
  std::string new_value;
  size_t records = 0;     // records (compared on both sides) with this very change
  std::string first_id;   // the first of them
};

struct Report {
  Options options;
  size_t records_compared = 0;     // distinct ids over both files
  std::vector<ParameterChange> parameter_changes;  // in field order of the first record
  std::vector<RecordDiff> records; // only records that differ: base order, then new-only ones
  size_t differences() const;
  bool same() const { return records.empty(); }
};

// Names the matrices of either file that a per-matrix tolerance names but neither file holds
// (UsageError). compare() calls it.
void check_matrix_names(const ResultsFile& base, const ResultsFile& fresh, const Options& options);

// When inputs or outputs differ structurally, that record's scores are not compared (cells
// of different tokens are not comparable); the structural findings already mark the drift.
Report compare(const ResultsFile& base, const ResultsFile& fresh, const Options& options);

// Readable listing, grouped by record, ending with a one-line summary.
std::string render_text(const Report& report);
// {same, records_compared, records_differing, differences, atol, rtol, atol_by_matrix,
//  rtol_by_matrix, top_k, min_spearman, parameter_changes: [{field, old, new, records, first_id}],
//  findings: [{id, kind, matrix, output_index, output_token, input_index, input_token, old, new}]}
// where old/new are a number, a string, a token {id, text}, a top-k list [{index, text}] or null
// (also for a score that is not finite: older result files hold null and +-1e999 for those);
// a spearman finding has old null and new the correlation.
std::string render_json(const Report& report);

}  // namespace pizza::diff
