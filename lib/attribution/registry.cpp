#include "attribution/method.h"

namespace pizza {

std::vector<std::pair<double, double>> input_point(const MethodOptions&) { return {{1.0, 1.0}}; }

const std::vector<GradientMethod>& gradient_methods() {
  static const std::vector<GradientMethod> kMethods = {saliency_method(), input_x_gradient_method(),
                                                       integrated_gradients_method()};
  return kMethods;
}

const GradientMethod* find_gradient_method(std::string_view name) {
  for (const auto& m : gradient_methods())
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace pizza
