#include "attribution/method.h"

namespace pizza {

std::vector<std::pair<double, double>> input_point(const MethodOptions&) { return {{1.0, 1.0}}; }

torch::Tensor input_times_gradient(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& grad,
                                   const MethodOptions& o) {
  auto s = (x * grad).sum(-1);
  return o.abs ? s.abs() : s;
}

const std::vector<GradientMethod>& gradient_methods() {
  static const std::vector<GradientMethod> kMethods = {saliency_method(), input_x_gradient_method(),
                                                       integrated_gradients_method(), attnlrp_method(),
                                                       cp_lrp_method()};
  return kMethods;
}

const GradientMethod* find_gradient_method(std::string_view name) {
  for (const auto& m : gradient_methods())
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace pizza
