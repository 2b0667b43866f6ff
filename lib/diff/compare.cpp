// Comparing two result files record by record: structure first (inputs, outputs), then every
// matrix cell against the tolerance, then each row's top-k inputs.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <span>
#include <unordered_map>

#include "diff/diff.h"
#include "util/error.h"
#include "util/json_writer.h"

namespace pizza::diff {

namespace {

// Collects one record's findings: counts all of them, keeps the first `limit` (0 = all).
class Collector {
 public:
  Collector(std::string id, size_t limit) : limit_(limit) { diff_.id = std::move(id); }

  void add(Finding f) {
    ++diff_.differences;
    if (limit_ == 0 || diff_.findings.size() < limit_) diff_.findings.push_back(std::move(f));
  }
  // Skips building the finding (token texts, ...) once it would be dropped anyway.
  bool full() const { return limit_ != 0 && diff_.findings.size() >= limit_; }
  void count_only() { ++diff_.differences; }
  RecordDiff take() { return std::move(diff_); }

 private:
  size_t limit_;
  RecordDiff diff_;
};

// Where a finding points; token texts are filled from the (base) record.
struct Where {
  std::string matrix;
  std::optional<size_t> output;
  std::optional<size_t> input;
};

Finding make_finding(Kind kind, const Record& rec, Where where, Value old_v, Value new_v) {
  Finding f;
  f.kind = kind;
  f.matrix = std::move(where.matrix);
  f.output_index = where.output;
  if (where.output) f.output_token = rec.result.outputs.at(*where.output).text;
  f.input_index = where.input;
  if (where.input) f.input_token = rec.result.inputs.at(*where.input).text;
  f.old_value = std::move(old_v);
  f.new_value = std::move(new_v);
  return f;
}

// Both NaN (null) or bit-for-bit the same infinity count as equal; any other non-finite
// mismatch differs (atol + rtol * inf would otherwise excuse everything next to an infinity).
bool within_tolerance(double old_v, double new_v, const Tolerance& tol) {
  if (std::isnan(old_v) || std::isnan(new_v)) return std::isnan(old_v) && std::isnan(new_v);
  if (!std::isfinite(old_v) || !std::isfinite(new_v)) return old_v == new_v;
  return std::fabs(new_v - old_v) <= tol.atol + tol.rtol * std::fabs(old_v);
}

// Columns that can rank: a real, nonzero score (0 marks a unit the row cannot depend on).
bool eligible(double v) { return !std::isnan(v) && v != 0; }

// The k columns of `row` with the largest |score|, ties to the lower index, in rank order.
std::vector<size_t> top_columns(std::span<const double> row, size_t k) {
  std::vector<size_t> cols;
  for (size_t c = 0; c < row.size(); ++c)
    if (eligible(row[c])) cols.push_back(c);
  const auto before = [&](size_t a, size_t b) {
    const double fa = std::fabs(row[a]), fb = std::fabs(row[b]);
    return fa != fb ? fa > fb : a < b;
  };
  k = std::min(k, cols.size());
  std::partial_sort(cols.begin(), cols.begin() + static_cast<std::ptrdiff_t>(k), cols.end(), before);
  cols.resize(k);
  return cols;
}

size_t count_eligible(std::span<const double> row) {
  return static_cast<size_t>(std::count_if(row.begin(), row.end(), eligible));
}

std::span<const double> row_of(const ScoreMatrix& m, size_t r) {
  return std::span<const double>(m.values).subspan(r * m.cols, m.cols);
}

// Ranks 1..n of `v`, ties sharing their mean rank (Spearman's convention).
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::ranges::sort(order, [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i + j) / 2) + 1;
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean_rank;
    i = j + 1;
  }
  return r;
}

// Spearman's rho of the signed scores over the columns where both are finite and not both 0
// (0 marks a unit a row cannot depend on: counting those pairs would inflate rho). nullopt
// when fewer than two columns remain or a side is constant there: rho is undefined, and the
// cell tolerance already judges such rows.
std::optional<double> spearman(std::span<const double> a, std::span<const double> b) {
  std::vector<double> x, y;
  for (size_t c = 0; c < a.size(); ++c) {
    if (!std::isfinite(a[c]) || !std::isfinite(b[c]) || (a[c] == 0 && b[c] == 0)) continue;
    x.push_back(a[c]);
    y.push_back(b[c]);
  }
  if (x.size() < 2) return std::nullopt;
  const auto rx = ranks(x), ry = ranks(y);
  const double mean = (static_cast<double>(rx.size()) + 1) / 2;  // the same for both
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx == 0 || syy == 0) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

// Inputs and outputs; true when they match, so that cells are comparable. Generated tokens
// match by text, and also by id unless a side has none (black-box `pizza api` outputs are
// text only) or ids are ignored (another tokenizer's vocabulary).
bool compare_structure(const Record& ra, const Record& rb, const Options& opt, Collector& out) {
  const AttributionResult &a = ra.result, &b = rb.result;
  bool same = true;
  if (a.inputs.size() != b.inputs.size()) {
    out.add(make_finding(Kind::input_count, ra, {}, static_cast<double>(a.inputs.size()),
                         static_cast<double>(b.inputs.size())));
    same = false;
  } else {
    for (size_t i = 0; i < a.inputs.size(); ++i) {
      if (a.inputs[i].text == b.inputs[i].text) continue;
      out.add(make_finding(Kind::input_text, ra, {"", std::nullopt, i}, a.inputs[i].text, b.inputs[i].text));
      same = false;
    }
  }
  if (a.outputs.size() != b.outputs.size()) {
    out.add(make_finding(Kind::output_count, ra, {}, static_cast<double>(a.outputs.size()),
                         static_cast<double>(b.outputs.size())));
    same = false;
  } else {
    for (size_t o = 0; o < a.outputs.size(); ++o) {
      const OutputToken &x = a.outputs[o], &y = b.outputs[o];
      const bool ids_match = opt.ignore_ids || x.id < 0 || y.id < 0 || x.id == y.id;
      if (x.text == y.text && ids_match) continue;
      out.add(make_finding(Kind::output_token, ra, {"", o, std::nullopt}, x, y));
      same = false;
    }
  }
  return same;
}

void check_spearman(const Record& rec, std::span<const double> a, std::span<const double> b,
                    const Options& opt, Where where, Collector& out) {
  if (!opt.min_spearman) return;
  const auto rho = spearman(a, b);
  if (rho && *rho < *opt.min_spearman) out.add(make_finding(Kind::spearman, rec, std::move(where), {}, *rho));
}

void compare_matrix(const Record& rec, const ScoreMatrix& a, const ScoreMatrix& b,
                    const Options& opt, Collector& out) {
  const Tolerance tol = opt.tolerance_for(a.name);
  for (size_t r = 0; r < a.rows; ++r) {
    const auto ra = row_of(a, r), rb = row_of(b, r);
    for (size_t c = 0; c < a.cols; ++c) {
      if (within_tolerance(ra[c], rb[c], tol)) continue;
      if (out.full()) {
        out.count_only();
        continue;
      }
      out.add(make_finding(Kind::score, rec, {a.name, r, c}, ra[c], rb[c]));
    }
    check_spearman(rec, ra, rb, opt, {a.name, r, std::nullopt}, out);
    if (opt.top_k == 0) continue;
    // Clamped to what both rows can rank, so a score fading to exactly 0 within tolerance
    // does not by itself change the set.
    const size_t k = std::min({opt.top_k, count_eligible(ra), count_eligible(rb)});
    const auto ta = top_columns(ra, k), tb = top_columns(rb, k);
    if (!std::is_permutation(ta.begin(), ta.end(), tb.begin(), tb.end())) {
      const auto units = [&](const std::vector<size_t>& cols) {
        std::vector<UnitRef> refs;
        for (size_t c : cols) refs.push_back({c, rec.result.inputs[c].text});
        return refs;
      };
      out.add(make_finding(Kind::top_k, rec, {a.name, r, std::nullopt}, units(ta), units(tb)));
    }
  }
  if (opt.min_spearman) {
    const auto ta = column_totals(a), tb = column_totals(b);
    check_spearman(rec, ta, tb, opt, {a.name, std::nullopt, std::nullopt}, out);
  }
}

const ScoreMatrix* find_matrix(const Record& rec, std::string_view name) {
  auto it = std::ranges::find(rec.result.matrices, name, &ScoreMatrix::name);
  return it == rec.result.matrices.end() ? nullptr : &*it;
}

void compare_matrices(const Record& a, const Record& b, const Options& opt, Collector& out) {
  for (const ScoreMatrix& m : a.result.matrices) {
    if (const ScoreMatrix* other = find_matrix(b, m.name)) {
      compare_matrix(a, m, *other, opt, out);
    } else {
      out.add(make_finding(Kind::matrix_missing, a, {m.name, std::nullopt, std::nullopt}, std::string("present"), {}));
    }
  }
  for (const ScoreMatrix& m : b.result.matrices)
    if (!find_matrix(a, m.name))
      out.add(make_finding(Kind::matrix_missing, a, {m.name, std::nullopt, std::nullopt}, {}, std::string("present")));
}

void compare_records(const Record& a, const Record& b, const Options& opt, Collector& out) {
  if (a.error || b.error) {
    // Two failures are the same outcome (their messages may hold paths or timings), but a
    // record that never produced a result checks nothing: a finding unless allowed.
    if (a.error && b.error) {
      if (!opt.allow_failed) out.add(make_finding(Kind::failed, a, {}, *a.error, *b.error));
      return;
    }
    const auto value = [](const Record& r) -> Value {
      return r.error ? Value(*r.error) : Value(std::monostate{});
    };
    out.add(make_finding(Kind::error_changed, a, {}, value(a), value(b)));
    return;
  }
  if (compare_structure(a, b, opt, out)) compare_matrices(a, b, opt, out);
}

void keep_if_differs(Collector& c, Report& report) {
  RecordDiff d = c.take();
  if (d.differences > 0) report.records.push_back(std::move(d));
}

// Adds the run_identity fields that differ between two records to the report's changes,
// counting records that share the very same change (a whole batch run with another --norm is
// one line, not one per record).
void collect_parameter_changes(const Record& a, const Record& b, Report& report) {
  const auto ia = run_identity(a.result), ib = run_identity(b.result);
  const auto value_of = [](const auto& fields, const std::string& name) -> std::string {
    auto it = std::ranges::find(fields, name, &std::pair<std::string, std::string>::first);
    return it == fields.end() ? std::string() : it->second;
  };
  std::vector<std::string> names;
  for (const auto& [name, v] : ia) names.push_back(name);
  for (const auto& [name, v] : ib)
    if (std::ranges::find(names, name) == names.end()) names.push_back(name);
  for (const std::string& name : names) {
    const std::string old_v = value_of(ia, name), new_v = value_of(ib, name);
    if (old_v == new_v) continue;
    auto it = std::ranges::find_if(report.parameter_changes, [&](const ParameterChange& c) {
      return c.field == name && c.old_value == old_v && c.new_value == new_v;
    });
    if (it == report.parameter_changes.end()) {
      report.parameter_changes.push_back({name, old_v, new_v, 0, a.id});
      it = std::prev(report.parameter_changes.end());
    }
    ++it->records;
  }
}

void check_tolerance(std::string_view option, std::string_view spec, double v) {
  if (!std::isfinite(v) || v < 0)
    throw UsageError(std::string(option) + ": tolerance must be a finite number >= 0, got '" + std::string(spec) + "'");
}

}  // namespace

Tolerance Options::tolerance_for(std::string_view matrix) const {
  Tolerance t = tolerance;
  if (auto it = atol_by_matrix.find(matrix); it != atol_by_matrix.end()) t.atol = it->second;
  if (auto it = rtol_by_matrix.find(matrix); it != rtol_by_matrix.end()) t.rtol = it->second;
  return t;
}

void check_options(const Options& o) {
  check_tolerance("--atol", std::to_string(o.tolerance.atol), o.tolerance.atol);
  check_tolerance("--rtol", std::to_string(o.tolerance.rtol), o.tolerance.rtol);
  for (const auto& [name, v] : o.atol_by_matrix) check_tolerance("--atol", name, v);
  for (const auto& [name, v] : o.rtol_by_matrix) check_tolerance("--rtol", name, v);
  if (o.min_spearman && !(*o.min_spearman >= -1 && *o.min_spearman <= 1))
    throw UsageError("--min-spearman must be between -1 and 1, got " + format_number_text(*o.min_spearman));
}

void parse_tolerances(std::string_view option, const std::vector<std::string>& values, double& all,
                      std::map<std::string, double, std::less<>>& by_matrix) {
  for (const std::string& value : values) {
    std::string_view rest(value);
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      const size_t eq = item.find('=');
      const std::string_view name = eq == std::string_view::npos ? std::string_view() : item.substr(0, eq);
      const std::string number(eq == std::string_view::npos ? item : item.substr(eq + 1));
      // strtod, not from_chars: "1e-4" and "inf" parse alike everywhere, and "" or "1x" fail.
      char* end = nullptr;
      const double v = number.empty() ? std::nan("") : std::strtod(number.c_str(), &end);
      if (number.empty() || end != number.c_str() + number.size() || (eq != std::string_view::npos && name.empty()))
        throw UsageError(std::string(option) + ": expected VALUE or MATRIX=VALUE (e.g. 1e-4 or prob=1e-5), got '" +
                         std::string(item) + "'");
      check_tolerance(option, item, v);
      if (name.empty()) {
        all = v;
      } else {
        by_matrix[std::string(name)] = v;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
}

void check_matrix_names(const ResultsFile& base, const ResultsFile& fresh, const Options& options) {
  std::vector<std::string> known;
  for (const ResultsFile* f : {&base, &fresh})
    for (const Record& r : f->records)
      for (const ScoreMatrix& m : r.result.matrices)
        if (std::ranges::find(known, m.name) == known.end()) known.push_back(m.name);
  for (const auto* by : {&options.atol_by_matrix, &options.rtol_by_matrix}) {
    for (const auto& [name, v] : *by) {
      if (std::ranges::find(known, name) != known.end()) continue;
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      throw UsageError(std::string(by == &options.atol_by_matrix ? "--atol" : "--rtol") + ": no matrix named '" +
                       name + "' in " + base.name + " or " + fresh.name + " (matrices: " +
                       (list.empty() ? "none" : list) + ")");
    }
  }
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::missing_record: return "missing_record";
    case Kind::error_changed: return "error_changed";
    case Kind::failed: return "failed";
    case Kind::input_count: return "input_count";
    case Kind::input_text: return "input_text";
    case Kind::output_count: return "output_count";
    case Kind::output_token: return "output_token";
    case Kind::matrix_missing: return "matrix_missing";
    case Kind::score: return "score";
    case Kind::top_k: return "top_k";
    case Kind::spearman: return "spearman";
  }
  return "unknown";
}

size_t Report::differences() const {
  return std::accumulate(records.begin(), records.end(), size_t{0},
                         [](size_t n, const RecordDiff& d) { return n + d.differences; });
}

Report compare(const ResultsFile& base, const ResultsFile& fresh, const Options& options) {
  check_options(options);
  check_matrix_names(base, fresh, options);
  Report report;
  report.options = options;
  std::unordered_map<std::string_view, const Record*> in_new, in_base;
  for (const Record& r : fresh.records) in_new.emplace(r.id, &r);
  for (const Record& r : base.records) in_base.emplace(r.id, &r);

  const auto missing = [&](const Record& r, bool in_base_only) {
    Collector c(r.id, options.max_findings_per_record);
    const Value present = std::string("present");
    c.add(make_finding(Kind::missing_record, r, {}, in_base_only ? present : Value(),
                       in_base_only ? Value() : present));
    keep_if_differs(c, report);
  };
  for (const Record& a : base.records) {
    auto it = in_new.find(a.id);
    if (it == in_new.end()) {
      missing(a, true);
      continue;
    }
    Collector c(a.id, options.max_findings_per_record);
    if (!a.error && !it->second->error) collect_parameter_changes(a, *it->second, report);
    compare_records(a, *it->second, options, c);
    keep_if_differs(c, report);
  }
  size_t only_new = 0;
  for (const Record& b : fresh.records) {
    if (in_base.contains(b.id)) continue;
    missing(b, false);
    ++only_new;
  }
  report.records_compared = base.records.size() + only_new;
  return report;
}

}  // namespace pizza::diff
