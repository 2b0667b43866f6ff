#include "perturbation/surrogate.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace pizza::perturbation {

std::vector<std::vector<bool>> ablation_masks(size_t units, size_t count, double keep_prob, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<bool>> masks(count, std::vector<bool>(units));
  for (auto& m : masks)
    for (size_t u = 0; u < units; ++u) m[u] = static_cast<double>(rng() >> 11) * 0x1.0p-53 < keep_prob;
  return masks;
}

LassoFit lasso(std::span<const double> X, size_t n, size_t p, std::span<const double> y, double alpha) {
  if (X.size() != n * p || y.size() != n || n == 0) throw std::invalid_argument("lasso: inconsistent sizes");
  const double dn = static_cast<double>(n);
  // Standardise the columns; centre y (the intercept is then fitted implicitly).
  std::vector<double> mean(p, 0.0), sd(p, 0.0), Z(n * p);
  for (size_t j = 0; j < p; ++j) {
    for (size_t i = 0; i < n; ++i) mean[j] += X[i * p + j];
    mean[j] /= dn;
    for (size_t i = 0; i < n; ++i) sd[j] += (X[i * p + j] - mean[j]) * (X[i * p + j] - mean[j]);
    sd[j] = std::sqrt(sd[j] / dn);
    for (size_t i = 0; i < n; ++i) Z[i * p + j] = sd[j] > 0 ? (X[i * p + j] - mean[j]) / sd[j] : 0.0;
  }
  double ymean = 0;
  for (double v : y) ymean += v;
  ymean /= dn;
  std::vector<double> r(n);  // residual y_c - Z beta
  for (size_t i = 0; i < n; ++i) r[i] = y[i] - ymean;

  // Cyclic coordinate descent: each standardised column has z.z / n = 1, so the update is a
  // soft-threshold of rho_j = z_j . (r + z_j beta_j) / n. Stops when no weight moves by more
  // than 1e-13 of the largest one (or after 100000 sweeps: the problem is tiny and convex).
  std::vector<double> beta(p, 0.0);
  LassoFit fit;
  for (int sweep = 0; sweep < 100000; ++sweep) {
    double max_step = 0, max_beta = 0;
    for (size_t j = 0; j < p; ++j) {
      if (sd[j] <= 0) continue;
      double rho = 0;
      for (size_t i = 0; i < n; ++i) rho += Z[i * p + j] * r[i];
      rho = rho / dn + beta[j];
      const double next = rho > alpha ? rho - alpha : rho < -alpha ? rho + alpha : 0.0;
      const double step = next - beta[j];
      if (step != 0) {
        for (size_t i = 0; i < n; ++i) r[i] -= Z[i * p + j] * step;
        beta[j] = next;
      }
      max_step = std::max(max_step, std::fabs(step));
      max_beta = std::max(max_beta, std::fabs(next));
    }
    fit.iterations = sweep + 1;
    if (max_step <= 1e-13 * std::max(max_beta, 1e-300)) break;
  }
  fit.weights.assign(p, 0.0);
  fit.intercept = ymean;
  for (size_t j = 0; j < p; ++j) {
    if (sd[j] <= 0) continue;
    fit.weights[j] = beta[j] / sd[j];
    fit.intercept -= fit.weights[j] * mean[j];
  }
  return fit;
}

namespace {
// 1-based ranks, ties sharing their average rank.
std::vector<double> average_ranks(std::span<const double> v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t t = i; t <= j; ++t) r[order[t]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size() || a.size() < 2) return 0;
  const auto ra = average_ranks(a), rb = average_ranks(b);
  const double n = static_cast<double>(ra.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    ma += ra[i];
    mb += rb[i];
  }
  ma /= n;
  mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa <= 0 || sbb <= 0) return 0;
  return sab / std::sqrt(saa * sbb);
}

double logit_of_logprob(double logprob) {
  const double lp = std::min(logprob, -1e-12);
  // log(1 - p) = log(-expm1(lp)): exact for p near 1, where 1 - exp(lp) would cancel.
  return lp - std::log(-std::expm1(lp));
}

}  // namespace pizza::perturbation
