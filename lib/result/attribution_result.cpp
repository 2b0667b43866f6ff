#include "result/attribution_result.h"

#include <cmath>

#include "util/error.h"
#include "util/json_writer.h"

namespace pizza {

namespace {

// A token or unit text quoted for a one-line message (escaped as in JSON: newlines and control
// bytes cannot break the line).
std::string quoted(std::string_view text) {
  std::string out(1, '"');
  out += json_escape(text);
  out += '"';
  return out;
}

std::string value_name(double v) { return std::isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity"; }

std::string row_name(const AttributionResult& r, size_t row) {
  return "row " + std::to_string(row) + " (output " +
         (row < r.outputs.size() ? quoted(r.outputs[row].text) : std::string("?")) + ")";
}

[[noreturn]] void refuse(const std::string& cell, double v) {
  throw InputError("attribution result: " + cell + " is " + value_name(v) +
                   " (the model's weights or the computation gave a non-finite value; no result is written)");
}

}  // namespace

void require_finite(const AttributionResult& r) {
  for (const ScoreMatrix& m : r.matrices) {
    for (size_t row = 0; row < m.rows; ++row) {
      for (size_t col = 0; col < m.cols; ++col) {
        const double v = m.values.at(row * m.cols + col);
        if (std::isfinite(v)) continue;
        refuse("matrix \"" + m.name + "\" " + row_name(r, row) + " column " + std::to_string(col) + " (input " +
                   (col < r.inputs.size() ? quoted(r.inputs[col].text) : std::string("?")) + ")",
               v);
      }
    }
  }
  for (const auto& [name, values] : r.row_stats) {
    for (size_t row = 0; row < values.size(); ++row)
      if (!std::isfinite(values[row])) refuse("row statistic \"" + name + "\" " + row_name(r, row), values[row]);
  }
  for (size_t row = 0; row < r.outputs.size(); ++row) {
    const auto& p = r.outputs[row].prob;
    if (p && !std::isfinite(*p)) refuse("output probability of " + row_name(r, row), *p);
  }
}

std::vector<double> column_totals(const ScoreMatrix& m) {
  std::vector<double> totals(m.cols, 0.0);
  if (m.rows == 0) return totals;
  for (size_t r = 0; r < m.rows; ++r)
    for (size_t c = 0; c < m.cols; ++c) totals[c] += m.at(r, c);
  for (double& t : totals) t /= static_cast<double>(m.rows);
  return totals;
}

}  // namespace pizza

namespace pizza {

std::vector<std::pair<std::string, std::string>> run_identity(const AttributionResult& r) {
  const auto str = [](std::string_view s) { return "\"" + json_escape(s) + "\""; };
  std::vector<std::pair<std::string, std::string>> id{
      {"model.path", str(r.model_path)}, {"model.model_type", str(r.model_type)},
      {"engine", str(r.engine)},         {"method", str(r.method)},
      {"target", str(r.target)},         {"unit", str(r.unit)}};
  for (const auto& [name, json] : r.parameters) id.emplace_back("parameters." + name, json);
  id.emplace_back("run.device", str(r.run.device));
  id.emplace_back("run.dtype", str(r.run.dtype));
  return id;
}

}  // namespace pizza
