// Integrated gradients: (x - baseline) times the gradient averaged along the straight path
// from the baseline to x. The path integral uses Gauss-Legendre quadrature, which converges
// far faster than midpoint or trapezoid steps on these smooth but steep integrands (on
// stories260K with the pad baseline: completeness gap ~1e-3 at 64 steps, ~1e-8 at 256).
// A zero baseline drives every RMSNorm input through zero, where the integrand is nearly
// singular; its gap shrinks slowly (~2% at 64 steps), which the reported gap makes visible.
// The engine reports the completeness gap sum(attr) - (f(x) - f(baseline)) per row.
#include <cmath>
#include <numbers>

#include "attribution/method.h"

namespace pizza {

namespace {

// (alpha, weight) of m-point Gauss-Legendre quadrature on [0, 1] (Newton's method on the
// Legendre polynomial, from the usual cosine estimates).
std::vector<std::pair<double, double>> gauss_legendre(int m) {
  std::vector<std::pair<double, double>> pts;
  for (int i = 1; i <= m; ++i) {
    double x = std::cos(std::numbers::pi * (i - 0.25) / (m + 0.5));
    double dp = 1;
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1, p1 = x;
      for (int k = 2; k <= m; ++k) {
        double pk = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = pk;
      }
      if (m == 1) p0 = 1, p1 = x;
      dp = m * (x * p1 - p0) / (x * x - 1);
      double dx = p1 / dp;
      x -= dx;
      if (std::fabs(dx) < 1e-15) break;
    }
    const double w = 2 / ((1 - x * x) * dp * dp);
    pts.emplace_back((x + 1) / 2, w / 2);
  }
  return pts;
}

}  // namespace

GradientMethod integrated_gradients_method() {
  return {"integrated-gradients", "path-integrated gradients from a baseline (--ig-steps, --ig-baseline zero|pad)", true,
          [](const MethodOptions& o) { return gauss_legendre(o.ig_steps); },
          [](const torch::Tensor& x, const torch::Tensor& base, const torch::Tensor& grad, const MethodOptions& o) {
            auto s = ((x - base) * grad).sum(-1);
            return o.abs ? s.abs() : s;
          }};
}

}  // namespace pizza
