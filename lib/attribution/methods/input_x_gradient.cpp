// Input x gradient: sum over the hidden dimension of embedding * gradient (signed; a
// first-order estimate of each position's contribution).
#include "attribution/method.h"

namespace pizza {

GradientMethod input_x_gradient_method() {
  return {"input-x-gradient", "sum over hidden of embedding x gradient (signed; --abs for magnitudes)", false,
          input_point, [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& grad, const MethodOptions& o) {
            auto s = (x * grad).sum(-1);
            return o.abs ? s.abs() : s;
          }};
}

}  // namespace pizza
