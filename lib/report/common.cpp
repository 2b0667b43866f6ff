#include "report/common.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "report/text.h"
#include "util/error.h"

namespace pizza::report::detail {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw InputError("attribution result: " + what);
}

void check_json_values(const std::vector<std::pair<std::string, std::string>>& pairs,
                       const char* field) {
  simdjson::dom::parser parser;
  std::set<std::string> seen;
  for (const auto& [name, raw] : pairs) {
    if (!seen.insert(name).second) fail(std::string(field) + " name '" + name + "' repeats");
    simdjson::padded_string padded(raw);
    auto doc = parser.parse(padded);
    if (doc.error())
      fail(std::string(field) + " '" + name + "' is not valid JSON: " +
           simdjson::error_message(doc.error()));
  }
}

}  // namespace

void validate(const AttributionResult& r) {
  if (r.matrices.empty()) fail("no score matrix");
  const size_t rows = r.outputs.size(), cols = r.inputs.size();
  for (const ScoreMatrix& m : r.matrices) {
    if (m.rows != rows || m.cols != cols)
      fail("matrix '" + m.name + "' is " + std::to_string(m.rows) + "x" + std::to_string(m.cols) +
           " but there are " + std::to_string(rows) + " outputs and " + std::to_string(cols) +
           " inputs");
    if (m.values.size() != rows * cols)
      fail("matrix '" + m.name + "' holds " + std::to_string(m.values.size()) +
           " values, expected " + std::to_string(rows * cols));
  }
  std::set<std::string> names;
  for (const ScoreMatrix& m : r.matrices)
    if (!names.insert(m.name).second) fail("matrix name '" + m.name + "' repeats");
  for (const auto& [name, values] : r.row_stats)
    if (values.size() != rows)
      fail("row_stats '" + name + "' has " + std::to_string(values.size()) + " values for " +
           std::to_string(rows) + " outputs");
  for (size_t i = 0; i < cols; ++i) {
    const InputUnit& u = r.inputs[i];
    if (u.special || u.generated) continue;
    if (u.begin > u.end || u.end > r.text.size())
      fail("input " + std::to_string(i) + " span [" + std::to_string(u.begin) + ", " +
           std::to_string(u.end) + ") is outside the " + std::to_string(r.text.size()) +
           "-byte prompt");
  }
  check_json_values(r.parameters, "parameter");
  check_json_values(r.extra_json, "extra");
  require_finite(r);
}

std::vector<Segment> prompt_segments(const AttributionResult& r) {
  const std::string& text = r.text;
  // owner[b]: the first prompt unit (in input order) whose span covers byte b.
  std::vector<int> owner(text.size(), -1);
  // Specials are anchored before the next spanned unit that follows them in input order.
  std::vector<std::pair<size_t, int>> specials;  // (anchor byte, unit)
  std::vector<int> pending;
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const InputUnit& u = r.inputs[i];
    if (u.generated) continue;
    if (u.special) {
      pending.push_back(static_cast<int>(i));
      continue;
    }
    for (int s : pending) specials.emplace_back(u.begin, s);
    pending.clear();
    for (size_t b = u.begin; b < u.end && b < text.size(); ++b)
      if (owner[b] < 0) owner[b] = static_cast<int>(i);
  }
  for (int s : pending) specials.emplace_back(text.size(), s);
  std::stable_sort(specials.begin(), specials.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  std::vector<Segment> out;
  auto append = [&](std::string_view piece, int unit) {
    if (!out.empty() && out.back().unit == unit) {
      out.back().text += piece;
    } else {
      out.push_back({std::string(piece), unit});
    }
  };
  size_t next_special = 0;
  auto flush_specials = [&](size_t upto) {
    for (; next_special < specials.size() && specials[next_special].first <= upto; ++next_special) {
      int unit = specials[next_special].second;
      out.push_back({r.inputs[static_cast<size_t>(unit)].text, unit});
    }
  };
  for (size_t i = 0; i < text.size();) {
    flush_specials(i);
    CodePoint cp = decode_utf8(text, i);
    size_t len = cp.len == 0 ? 1 : cp.len;
    append(std::string_view(text).substr(i, len), owner[i]);
    i += len;
  }
  flush_specials(text.size());
  return out;
}

std::vector<int> generated_output_index(const AttributionResult& r) {
  std::vector<int> idx(r.inputs.size(), -1);
  int k = 0;
  for (size_t i = 0; i < r.inputs.size(); ++i)
    if (r.inputs[i].generated) idx[i] = k++;
  return idx;
}

double max_abs(std::span<const double> values) {
  double m = 0;
  for (double v : values)
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return m;
}

Rgb heat_color(double score, double scale) {
  if (!std::isfinite(score)) return {200, 200, 200};
  if (!(scale > 0)) return {};
  double t = std::clamp(score / scale, -1.0, 1.0);
  auto channel = [](double full, double a) {
    return static_cast<uint8_t>(std::lround(255.0 - a * (255.0 - full)));
  };
  double a = std::fabs(t);
  if (t >= 0) return {255, channel(60, a), channel(60, a)};
  return {channel(60, a), channel(120, a), 255};
}

Rgb text_color_on(Rgb bg) {
  double luminance = 0.299 * bg.r + 0.587 * bg.g + 0.114 * bg.b;
  return luminance < 150 ? Rgb{255, 255, 255} : Rgb{0, 0, 0};
}

}  // namespace pizza::report::detail
