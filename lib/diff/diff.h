// `pizza diff`: compares two attribution result files (a baseline and a new run) and lists
// what drifted, for CI regression checks. Reads the JSON document the report writer produces
// (lib/report/attribution.schema.json) or JSON Lines of such records keyed by "id"; compares
// only what identifies a result (input units, output tokens, every score matrix by name and
// each row's top-k inputs) and ignores timings and run details.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
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
  std::vector<std::string> inputs;   // input unit texts (columns)
  // The same columns with their byte spans in `prompt` and flags (pizza eval reads these).
  std::vector<InputUnit> units;
  std::string prompt, output_text, method, model_path;
  std::vector<OutputToken> outputs;  // generated tokens (rows); id -1 when null, prob unused
  std::vector<ScoreMatrix> matrices; // the primary matrix first, then the others of "matrices"
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

struct Options {
  double atol = 1e-4;   // a score differs when |new - old| > atol + rtol * |old|
  double rtol = 1e-3;
  size_t top_k = 3;     // compare each row's k most important inputs as a set; 0 disables
  // Findings kept (and printed) per record; the rest are only counted. 0 keeps all. Bounds
  // memory when a whole matrix drifts.
  size_t max_findings_per_record = 20;
};
// Throws UsageError for a negative or non-finite tolerance.
void check_options(const Options& options);

enum class Kind {
  missing_record,  // the id is in one file only
  error_changed,   // a record failed in one run only
  input_count,     // number of input units differs
  input_text,      // an input unit's text differs
  output_count,    // number of generated tokens differs
  output_token,    // a generated token's text or id differs
  matrix_missing,  // a metric (matrix name) is in one record only
  score,           // a cell differs beyond tolerance
  top_k,           // a row's set of top-k inputs by |score| changed
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
  std::optional<size_t> output_index;  // row
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

struct Report {
  Options options;
  size_t records_compared = 0;     // distinct ids over both files
  std::vector<RecordDiff> records; // only records that differ: base order, then new-only ones
  size_t differences() const;
  bool same() const { return records.empty(); }
};

// When inputs or outputs differ structurally, that record's scores are not compared (cells
// of different tokens are not comparable); the structural findings already mark the drift.
Report compare(const ResultsFile& base, const ResultsFile& fresh, const Options& options);

// Readable listing, grouped by record, ending with a one-line summary.
std::string render_text(const Report& report);
// {same, records_compared, records_differing, differences, atol, rtol, top_k,
//  findings: [{id, kind, matrix, output_index, output_token, input_index, input_token, old, new}]}
// where old/new are a number, a string, a token {id, text}, a top-k list [{index, text}] or null
// (also for a score that is not finite: older result files hold null and +-1e999 for those).
std::string render_json(const Report& report);

}  // namespace pizza::diff
