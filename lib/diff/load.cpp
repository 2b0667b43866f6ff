// Reading result files for `pizza diff`: format detection, JSON Lines splitting and the
// field checks that turn a malformed record into a one-line error instead of a wrong diff.
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "diff/diff.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json_compact.h"

namespace pizza::diff {

namespace {

namespace dom = simdjson::dom;

// Result files written before results had to be finite spell +-infinity as +-1e999 (and NaN
// as null); pizza diff still reads them, but simdjson rejects numbers that overflow a double. Outside strings, exactly those two
// tokens are rewritten as string sentinels of the same length (a quoted U+221E), which
// read_cell maps back; no schema-valid document contains such a string in a matrix.
constexpr std::string_view kPosInfToken = "1e999";
constexpr std::string_view kNegInfToken = "-1e999";
constexpr std::string_view kPosInfQuoted = "\"\xE2\x88\x9E\"";   // "∞":  5 bytes, like 1e999
constexpr std::string_view kNegInfQuoted = "\"-\xE2\x88\x9E\"";  // "-∞": 6 bytes, like -1e999
// The string values the parser reads from those sentinels.
constexpr std::string_view kPosInfSentinel = kPosInfQuoted.substr(1, kPosInfQuoted.size() - 2);
constexpr std::string_view kNegInfSentinel = kNegInfQuoted.substr(1, kNegInfQuoted.size() - 2);
static_assert(kPosInfQuoted.size() == kPosInfToken.size() && kNegInfQuoted.size() == kNegInfToken.size());

bool is_delimiter(char c) {
  return c == ',' || c == ']' || c == '}' || c == '[' || c == ':' || c == ' ' || c == '\t' ||
         c == '\r' || c == '\n';
}

void protect_infinities(std::string& s) {
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\n') {
      in_string = false;  // JSON strings cannot hold a raw newline; a new JSONL record starts
    } else if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if ((c == '1' || c == '-') && (i == 0 || is_delimiter(s[i - 1]))) {
      for (auto [token, quoted] : {std::pair{kPosInfToken, kPosInfQuoted},
                                   std::pair{kNegInfToken, kNegInfQuoted}}) {
        const size_t end = i + token.size();
        if (std::string_view(s).substr(i, token.size()) == token &&
            (end == s.size() || is_delimiter(s[end]))) {
          std::copy(quoted.begin(), quoted.end(), s.begin() + static_cast<std::ptrdiff_t>(i));
          i = end - 1;
          break;
        }
      }
    }
  }
}

// Context for messages: "<file>:<line>: " (or "<file>: " for a single document).
class Reader {
 public:
  Reader(std::string_view file, size_t line) : where_(file) {
    if (line) where_.append(":").append(std::to_string(line));
    where_.append(": ");
  }

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw InputError(where_ + "field \"" + field + "\": " + problem);
  }
  [[noreturn]] void fail(const std::string& problem) const { throw InputError(where_ + problem); }

  dom::element member(dom::object obj, const std::string& path, std::string_view key) const {
    dom::element e;
    if (obj[key].get(e) != simdjson::SUCCESS) fail(path, "missing");
    return e;
  }
  dom::object object(dom::element e, const std::string& path) const {
    dom::object o;
    if (e.get(o) != simdjson::SUCCESS) fail(path, "expected an object");
    return o;
  }
  dom::array array(dom::element e, const std::string& path) const {
    dom::array a;
    if (e.get(a) != simdjson::SUCCESS) fail(path, "expected an array");
    return a;
  }
  std::string string(dom::element e, const std::string& path) const {
    std::string_view s;
    // A sentinel here was a number (+-1e999) in the file, not a string.
    if (e.get(s) != simdjson::SUCCESS || s == kPosInfSentinel || s == kNegInfSentinel)
      fail(path, "expected a string");
    return std::string(s);
  }
  int64_t integer(dom::element e, const std::string& path) const {
    int64_t v = 0;
    if (e.get(v) != simdjson::SUCCESS) fail(path, "expected an integer");
    return v;
  }

  // A score: a number, null (NaN) or the infinity sentinel.
  double cell(dom::element e, const std::string& path) const {
    if (e.is_null()) return std::numeric_limits<double>::quiet_NaN();
    double v = 0;
    if (e.get(v) == simdjson::SUCCESS) return v;
    std::string_view s;
    if (e.get(s) == simdjson::SUCCESS) {
      if (s == kPosInfSentinel) return std::numeric_limits<double>::infinity();
      if (s == kNegInfSentinel) return -std::numeric_limits<double>::infinity();
    }
    fail(path, "expected a number or null");
  }

  ScoreMatrix matrix(dom::element e, const std::string& path, std::string name, size_t rows,
                     size_t cols) const {
    ScoreMatrix m{std::move(name), rows, cols, {}};
    m.values.reserve(rows * cols);
    dom::array arr = array(e, path);
    if (arr.size() != rows)
      fail(path, std::to_string(arr.size()) + " rows, expected " + std::to_string(rows) +
                     " (one per output)");
    size_t r = 0;
    for (dom::element row : arr) {
      const std::string row_path = path + "[" + std::to_string(r) + "]";
      dom::array cells = array(row, row_path);
      if (cells.size() != cols)
        fail(row_path, std::to_string(cells.size()) + " values, expected " + std::to_string(cols) +
                           " (one per input)");
      size_t c = 0;
      for (dom::element cell_e : cells) m.values.push_back(cell(cell_e, row_path + "[" + std::to_string(c++) + "]"));
      ++r;
    }
    return m;
  }

 private:
  std::string where_;
};

std::string read_id(const Reader& rd, dom::element e) {
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) return std::string(s);
  int64_t n = 0;
  if (e.get(n) == simdjson::SUCCESS) return std::to_string(n);
  rd.fail("id", "expected a string or an integer");
}

// Numbers of a row_stats vector: like matrix cells, older files may hold null or +-1e999.
std::vector<double> read_numbers(const Reader& rd, dom::element e, const std::string& path) {
  std::vector<double> out;
  size_t i = 0;
  for (dom::element x : rd.array(e, path)) out.push_back(rd.cell(x, path + "[" + std::to_string(i++) + "]"));
  return out;
}

// An object of raw JSON values (parameters, extra), kept in file order as the writer emits them.
std::vector<std::pair<std::string, std::string>> read_raw_object(const Reader& rd, dom::element e,
                                                                 const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto [key, value] : rd.object(e, path)) out.emplace_back(std::string(key), compact_json(value));
  return out;
}

double read_number(const Reader& rd, dom::element e, const std::string& path) {
  double v = 0;
  if (e.get(v) != simdjson::SUCCESS) rd.fail(path, "expected a number");
  return v;
}

InputUnit read_input(const Reader& rd, dom::element unit, const std::string& path) {
  dom::object obj = rd.object(unit, path);
  InputUnit u;
  u.text = rd.string(rd.member(obj, path + ".text", "text"), path + ".text");
  dom::element f;
  if (obj["span"].get(f) == simdjson::SUCCESS) {
    int64_t be[2] = {0, 0};
    size_t n = 0;
    for (dom::element x : rd.array(f, path + ".span")) {
      if (n < 2) be[n] = rd.integer(x, path + ".span");
      ++n;
    }
    if (n != 2 || be[0] < 0 || be[1] < be[0]) rd.fail(path + ".span", "expected [begin, end], a byte range");
    u.begin = static_cast<size_t>(be[0]);
    u.end = static_cast<size_t>(be[1]);
  }
  if (obj["token_ids"].get(f) == simdjson::SUCCESS) {
    for (dom::element x : rd.array(f, path + ".token_ids")) {
      const int64_t v = rd.integer(x, path + ".token_ids");
      if (v < 0 || v > std::numeric_limits<int32_t>::max()) rd.fail(path + ".token_ids", "out of range");
      u.token_ids.push_back(static_cast<int32_t>(v));
    }
  }
  bool flag = false;
  if (obj["special"].get(flag) == simdjson::SUCCESS) u.special = flag;
  if (obj["generated"].get(flag) == simdjson::SUCCESS) u.generated = flag;
  return u;
}

OutputToken read_output(const Reader& rd, dom::element tok, const std::string& path) {
  dom::object obj = rd.object(tok, path);
  OutputToken t;
  t.text = rd.string(rd.member(obj, path + ".text", "text"), path + ".text");
  dom::element id = rd.member(obj, path + ".id", "id");
  if (!id.is_null()) {
    const int64_t v = rd.integer(id, path + ".id");
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) rd.fail(path + ".id", "out of range");
    t.id = static_cast<int32_t>(v);
  }
  dom::element prob;
  if (obj["prob"].get(prob) == simdjson::SUCCESS && !prob.is_null()) t.prob = read_number(rd, prob, path + ".prob");
  return t;
}

// `id_required`: JSONL records are matched by id; a single document may go without.
Record read_record(dom::element root, const Reader& rd, size_t line, bool id_required) {
  Record rec;
  rec.line = line;
  dom::object doc;
  if (root.get(doc) != simdjson::SUCCESS) rd.fail("expected a JSON object (one result record)");

  dom::element e;
  if (doc["id"].get(e) == simdjson::SUCCESS) {
    rec.id = read_id(rd, e);
  } else if (id_required) {
    rd.fail("id", "missing (JSON Lines records are matched by id)");
  }
  if (doc["error"].get(e) == simdjson::SUCCESS) {
    rec.error = rd.string(e, "error");
    return rec;  // a failed batch record carries nothing else to compare
  }

  const int64_t version = rd.integer(rd.member(doc, "schema_version", "schema_version"), "schema_version");
  if (version != kSchemaVersion)
    rd.fail("schema_version", "is " + std::to_string(version) + ", pizza diff reads version " +
                                  std::to_string(kSchemaVersion));

  AttributionResult& r = rec.result;
  size_t i = 0;
  for (dom::element unit : rd.array(rd.member(doc, "inputs", "inputs"), "inputs"))
    r.inputs.push_back(read_input(rd, unit, "inputs[" + std::to_string(i++) + "]"));
  size_t o = 0;
  for (dom::element tok : rd.array(rd.member(doc, "outputs", "outputs"), "outputs"))
    r.outputs.push_back(read_output(rd, tok, "outputs[" + std::to_string(o++) + "]"));

  // What describes the run: optional here (diff compares the matrices), shown by render.
  const auto text = [&](std::string_view key, std::string& out) {
    if (doc[key].get(e) == simdjson::SUCCESS) out = rd.string(e, std::string(key));
  };
  text("prompt", r.text);
  text("output_text", r.output_text);
  text("engine", r.engine);
  text("method", r.method);
  text("target", r.target);
  text("unit", r.unit);
  if (doc["tool"]["version"].get(e) == simdjson::SUCCESS) r.tool_version = rd.string(e, "tool.version");
  if (doc["model"]["path"].get(e) == simdjson::SUCCESS) r.model_path = rd.string(e, "model.path");
  if (doc["model"]["model_type"].get(e) == simdjson::SUCCESS) r.model_type = rd.string(e, "model.model_type");
  if (doc["parameters"].get(e) == simdjson::SUCCESS) r.parameters = read_raw_object(rd, e, "parameters");
  if (doc["extra"].get(e) == simdjson::SUCCESS) r.extra_json = read_raw_object(rd, e, "extra");
  if (doc["row_stats"].get(e) == simdjson::SUCCESS)
    for (auto [name, values] : rd.object(e, "row_stats"))
      r.row_stats.emplace_back(std::string(name), read_numbers(rd, values, "row_stats." + std::string(name)));
  if (doc["timings"].get(e) == simdjson::SUCCESS) {
    const auto timing = [&](std::string_view key, double& out) {
      dom::element t;
      if (e[key].get(t) == simdjson::SUCCESS) out = read_number(rd, t, "timings." + std::string(key));
    };
    timing("load_ms", r.timings.load_ms);
    timing("generate_ms", r.timings.generate_ms);
    timing("attribute_ms", r.timings.attribute_ms);
    double peak = 0;
    timing("peak_rss_bytes", peak);
    r.timings.peak_rss_bytes = peak >= 0 && peak < 9.2e18 ? static_cast<int64_t>(peak) : 0;
    const auto count = [&](std::string_view key, int64_t& out) {
      double v = 0;
      timing(key, v);
      out = v >= 0 && v < 9.2e18 ? static_cast<int64_t>(v) : 0;
    };
    count("memory_budget_bytes", r.timings.memory_budget_bytes);
    count("rows_per_pass", r.timings.rows_per_pass);
    count("estimated_peak_bytes", r.timings.estimated_peak_bytes);
  }
  if (doc["run"].get(e) == simdjson::SUCCESS) {
    dom::element f;
    if (e["device"].get(f) == simdjson::SUCCESS) r.run.device = rd.string(f, "run.device");
    if (e["dtype"].get(f) == simdjson::SUCCESS) r.run.dtype = rd.string(f, "run.dtype");
    if (e["blas"].get(f) == simdjson::SUCCESS) r.run.blas = rd.string(f, "run.blas");
    if (e["threads"].get(f) == simdjson::SUCCESS) r.run.threads = static_cast<int>(rd.integer(f, "run.threads"));
  }

  const size_t rows = r.outputs.size(), cols = r.inputs.size();
  std::string primary = rd.string(rd.member(doc, "matrix_name", "matrix_name"), "matrix_name");
  r.matrices.push_back(rd.matrix(rd.member(doc, "matrix", "matrix"), "matrix", primary, rows, cols));
  if (doc["matrices"].get(e) == simdjson::SUCCESS) {
    // "matrices" repeats the primary metric; it was read above from "matrix".
    for (auto [name, m] : rd.object(e, "matrices")) {
      if (name == primary) continue;
      r.matrices.push_back(rd.matrix(m, "matrices." + std::string(name), std::string(name), rows, cols));
    }
  }
  return rec;
}

size_t first_non_space(std::string_view s) {
  return s.find_first_not_of(" \t\r\n");
}

void add_record(ResultsFile& file, Record rec, std::unordered_map<std::string, size_t>& seen,
                const Reader& rd) {
  auto [it, inserted] = seen.emplace(rec.id, rec.line);
  if (!inserted)
    rd.fail("id", "duplicate id \"" + rec.id + "\" (first at line " + std::to_string(it->second) + ")");
  file.records.push_back(std::move(rec));
}

}  // namespace

ResultsFile parse_results(std::string contents, std::string_view name) {
  ResultsFile file{std::string(name), {}};
  const size_t start = first_non_space(contents);
  if (start == std::string::npos) throw InputError(file.name + ": empty file, no result records");
  protect_infinities(contents);

  dom::parser parser;
  dom::element root;
  simdjson::error_code whole = simdjson::TAPE_ERROR;
  if (contents[start] == '{') {
    whole = parser.parse(contents).get(root);
    if (whole == simdjson::SUCCESS) {
      file.records.push_back(read_record(root, Reader(name, 0), 0, false));
      return file;
    }
  }

  // JSON Lines: one record per non-blank line.
  std::unordered_map<std::string, size_t> seen;
  std::string_view rest(contents);
  bool first = true;
  for (size_t line = 1; !rest.empty(); ++line) {
    const size_t nl = rest.find('\n');
    const std::string_view text = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (first_non_space(text) == std::string_view::npos) continue;
    const Reader rd(name, line);
    if (auto err = parser.parse(text.data(), text.size()).get(root); err != simdjson::SUCCESS) {
      // A broken first line usually means a broken pretty-printed document: say both.
      if (first && contents[start] == '{')
        throw InputError(file.name + ": not valid JSON (" + simdjson::error_message(whole) +
                         ") nor JSON Lines (line " + std::to_string(line) + ": " +
                         simdjson::error_message(err) + ")");
      rd.fail(std::string("not valid JSON (") + simdjson::error_message(err) + ")");
    }
    first = false;
    add_record(file, read_record(root, rd, line, true), seen, rd);
  }
  return file;
}

ResultsFile load_results(const std::filesystem::path& path) {
  return parse_results(read_file(path, FileSource::stream_ok), path.string());
}

}  // namespace pizza::diff
