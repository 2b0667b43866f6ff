#include "result/attribution_result.h"

namespace pizza {

std::vector<double> column_totals(const ScoreMatrix& m) {
  std::vector<double> totals(m.cols, 0.0);
  if (m.rows == 0) return totals;
  for (size_t r = 0; r < m.rows; ++r)
    for (size_t c = 0; c < m.cols; ++c) totals[c] += m.at(r, c);
  for (double& t : totals) t /= static_cast<double>(m.rows);
  return totals;
}

}  // namespace pizza
