// Saliency: the norm of the gradient over the hidden dimension (PIZZA uses L1).
#include "attribution/method.h"

namespace pizza {

GradientMethod saliency_method() {
  return {"saliency", "norm of the gradient w.r.t. the input embedding (--norm l1|l2)", false, input_point,
          [](const torch::Tensor&, const torch::Tensor&, const torch::Tensor& grad, const MethodOptions& o) {
            if (o.norm == "l2") return grad.norm(2, -1);
            return grad.abs().sum(-1);
          }};
}

}  // namespace pizza
