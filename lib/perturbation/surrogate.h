// ContextCite's surrogate model (Cohen-Wang et al., 2024): random ablation masks of the prompt's
// units, and a sparse linear model (Lasso) that predicts the output's score from which units a
// mask keeps. The fitted weights are the attributions.
//
// The Lasso is a coordinate-descent solver written here rather than taken from a library:
// Debian's only packaged C++ Lasso is mlpack's LARS, which brings Armadillo and a heavy
// header-only build for problems of a few dozen rows and columns; the solver below is ~60 lines,
// checked against closed-form solutions and the optimality (KKT) conditions in the tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace pizza::perturbation {

// Random masks: masks[a][u] = unit u is kept in ablation a, each with probability keep_prob,
// reproducible from `seed` on every platform (mt19937_64's raw output). `pizza eval`'s LDS masks
// and ContextCite's ablations both come from here (with different seeds).
std::vector<std::vector<bool>> ablation_masks(size_t units, size_t count, double keep_prob, uint64_t seed);

struct LassoFit {
  std::vector<double> weights;  // per column, in the original (unstandardised) units of X
  double intercept = 0;
  int iterations = 0;
};

// Minimises (1 / 2n) |y - b - Z beta|^2 + alpha |beta|_1 over the standardised columns Z of X
// (centred, divided by their population standard deviation, as scikit-learn's StandardScaler;
// a constant column gets weight 0), then maps beta back: weights = beta / sd,
// intercept = mean(y) - sum(weights * mean(X)). alpha = 0 is least squares (when unique).
// X is row-major n x p.
LassoFit lasso(std::span<const double> X, size_t n, size_t p, std::span<const double> y, double alpha);

// Spearman rank correlation (average ranks for ties); 0 when either side is constant or the
// sizes differ or are below 2.
double spearman(std::span<const double> a, std::span<const double> b);

// log p - log(1 - p) from log p (ContextCite's per-token target), bounded for p -> 1:
// log p is taken as at most -1e-12, which caps the result near 27.6.
double logit_of_logprob(double logprob);

}  // namespace pizza::perturbation
