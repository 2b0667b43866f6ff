// Comparing two result files record by record: structure first (inputs, outputs), then every
// matrix cell against the tolerance, then each row's top-k inputs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <unordered_map>

#include "diff/diff.h"
#include "util/error.h"

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
  if (where.output) f.output_token = rec.outputs.at(*where.output).text;
  f.input_index = where.input;
  if (where.input) f.input_token = rec.inputs.at(*where.input);
  f.old_value = std::move(old_v);
  f.new_value = std::move(new_v);
  return f;
}

// Both NaN (null) or bit-for-bit the same infinity count as equal; any other non-finite
// mismatch differs (atol + rtol * inf would otherwise excuse everything next to an infinity).
bool within_tolerance(double old_v, double new_v, const Options& opt) {
  if (std::isnan(old_v) || std::isnan(new_v)) return std::isnan(old_v) && std::isnan(new_v);
  if (!std::isfinite(old_v) || !std::isfinite(new_v)) return old_v == new_v;
  return std::fabs(new_v - old_v) <= opt.atol + opt.rtol * std::fabs(old_v);
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

// Inputs and outputs; true when they match, so that cells are comparable.
bool compare_structure(const Record& a, const Record& b, Collector& out) {
  bool same = true;
  if (a.inputs.size() != b.inputs.size()) {
    out.add(make_finding(Kind::input_count, a, {}, static_cast<double>(a.inputs.size()),
                         static_cast<double>(b.inputs.size())));
    same = false;
  } else {
    for (size_t i = 0; i < a.inputs.size(); ++i) {
      if (a.inputs[i] == b.inputs[i]) continue;
      out.add(make_finding(Kind::input_text, a, {"", std::nullopt, i}, a.inputs[i], b.inputs[i]));
      same = false;
    }
  }
  if (a.outputs.size() != b.outputs.size()) {
    out.add(make_finding(Kind::output_count, a, {}, static_cast<double>(a.outputs.size()),
                         static_cast<double>(b.outputs.size())));
    same = false;
  } else {
    for (size_t o = 0; o < a.outputs.size(); ++o) {
      const OutputToken &x = a.outputs[o], &y = b.outputs[o];
      if (x.text == y.text && x.id == y.id) continue;
      out.add(make_finding(Kind::output_token, a, {"", o, std::nullopt}, x, y));
      same = false;
    }
  }
  return same;
}

void compare_matrix(const Record& rec, const ScoreMatrix& a, const ScoreMatrix& b,
                    const Options& opt, Collector& out) {
  for (size_t r = 0; r < a.rows; ++r) {
    const auto ra = row_of(a, r), rb = row_of(b, r);
    for (size_t c = 0; c < a.cols; ++c) {
      if (within_tolerance(ra[c], rb[c], opt)) continue;
      if (out.full()) {
        out.count_only();
        continue;
      }
      out.add(make_finding(Kind::score, rec, {a.name, r, c}, ra[c], rb[c]));
    }
    if (opt.top_k == 0) continue;
    // Clamped to what both rows can rank, so a score fading to exactly 0 within tolerance
    // does not by itself change the set.
    const size_t k = std::min({opt.top_k, count_eligible(ra), count_eligible(rb)});
    const auto ta = top_columns(ra, k), tb = top_columns(rb, k);
    if (!std::is_permutation(ta.begin(), ta.end(), tb.begin(), tb.end())) {
      const auto units = [&](const std::vector<size_t>& cols) {
        std::vector<UnitRef> refs;
        for (size_t c : cols) refs.push_back({c, rec.inputs[c]});
        return refs;
      };
      out.add(make_finding(Kind::top_k, rec, {a.name, r, std::nullopt}, units(ta), units(tb)));
    }
  }
}

const ScoreMatrix* find_matrix(const Record& rec, std::string_view name) {
  auto it = std::ranges::find(rec.matrices, name, &ScoreMatrix::name);
  return it == rec.matrices.end() ? nullptr : &*it;
}

void compare_matrices(const Record& a, const Record& b, const Options& opt, Collector& out) {
  for (const ScoreMatrix& m : a.matrices) {
    if (const ScoreMatrix* other = find_matrix(b, m.name)) {
      compare_matrix(a, m, *other, opt, out);
    } else {
      out.add(make_finding(Kind::matrix_missing, a, {m.name, std::nullopt, std::nullopt}, std::string("present"), {}));
    }
  }
  for (const ScoreMatrix& m : b.matrices)
    if (!find_matrix(a, m.name))
      out.add(make_finding(Kind::matrix_missing, a, {m.name, std::nullopt, std::nullopt}, {}, std::string("present")));
}

void compare_records(const Record& a, const Record& b, const Options& opt, Collector& out) {
  if (a.error || b.error) {
    // Two failures are the same outcome; their messages may hold paths or timings.
    if (a.error && b.error) return;
    const auto value = [](const Record& r) -> Value {
      return r.error ? Value(*r.error) : Value(std::monostate{});
    };
    out.add(make_finding(Kind::error_changed, a, {}, value(a), value(b)));
    return;
  }
  if (compare_structure(a, b, out)) compare_matrices(a, b, opt, out);
}

void keep_if_differs(Collector& c, Report& report) {
  RecordDiff d = c.take();
  if (d.differences > 0) report.records.push_back(std::move(d));
}

}  // namespace

void check_options(const Options& o) {
  const auto check = [](double v, const char* name) {
    if (!std::isfinite(v) || v < 0)
      throw UsageError(std::string(name) + " must be a finite number >= 0");
  };
  check(o.atol, "--atol");
  check(o.rtol, "--rtol");
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::missing_record: return "missing_record";
    case Kind::error_changed: return "error_changed";
    case Kind::input_count: return "input_count";
    case Kind::input_text: return "input_text";
    case Kind::output_count: return "output_count";
    case Kind::output_token: return "output_token";
    case Kind::matrix_missing: return "matrix_missing";
    case Kind::score: return "score";
    case Kind::top_k: return "top_k";
  }
  return "unknown";
}

size_t Report::differences() const {
  return std::accumulate(records.begin(), records.end(), size_t{0},
                         [](size_t n, const RecordDiff& d) { return n + d.differences; });
}

Report compare(const ResultsFile& base, const ResultsFile& fresh, const Options& options) {
  check_options(options);
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
