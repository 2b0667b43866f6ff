// Integrated gradients: (x - baseline) times the gradient averaged along the straight path
// from the baseline to x. The integral uses the midpoint rule, whose error falls as 1/steps^2;
// the engine reports the completeness gap sum(attr) - (f(x) - f(baseline)) per row.
#include "attribution/method.h"

namespace pizza {

GradientMethod integrated_gradients_method() {
  return {"integrated-gradients", "path-integrated gradients from a baseline (--ig-steps, --ig-baseline zero|pad)", true,
          [](const MethodOptions& o) {
            std::vector<std::pair<double, double>> pts;
            const int m = o.ig_steps;
            for (int k = 0; k < m; ++k) pts.emplace_back((k + 0.5) / m, 1.0 / m);
            return pts;
          },
          [](const torch::Tensor& x, const torch::Tensor& base, const torch::Tensor& grad, const MethodOptions& o) {
            auto s = ((x - base) * grad).sum(-1);
            return o.abs ? s.abs() : s;
          }};
}

}  // namespace pizza
