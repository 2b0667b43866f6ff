// Gradient attribution methods, in a registry. A method says at which points between a
// baseline and the input the gradient is taken (and with which weights), and how the
// accumulated gradient becomes one score per input position. The engine (gradient.h) does
// the batching; a new method is one file in methods/ plus one line in registry.cpp.
#pragma once

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/relevance.h"

namespace pizza {

enum class Baseline { zero, pad };

struct MethodOptions {
  std::string norm = "l1";  // saliency: l1 | l2
  bool abs = false;         // signed methods: report magnitudes
  int ig_steps = 32;
  Baseline baseline = Baseline::pad;
};

struct GradientMethod {
  std::string name;
  std::string description;
  // Whether the method needs a baseline (and reports a completeness gap).
  bool uses_baseline = false;
  // (alpha, weight) pairs: the gradient is taken at baseline + alpha (x - baseline) and
  // accumulated as sum(weight * gradient).
  std::vector<std::pair<double, double>> (*points)(const MethodOptions&);
  // x, baseline [L, D]; grad = accumulated gradient [L, D] -> scores [L].
  torch::Tensor (*reduce)(const torch::Tensor& x, const torch::Tensor& baseline, const torch::Tensor& grad,
                          const MethodOptions&);
  // The backward rules the gradient is taken under: LRP methods are input x gradient under
  // their relevance rules, and report the conservation gap sum(relevance) - f(x) per row.
  Relevance rules = Relevance::gradient;
  // The target when none is asked for.
  std::string_view default_target = "prob";
};

// The methods of methods/*.cpp.
GradientMethod saliency_method();
GradientMethod input_x_gradient_method();
GradientMethod integrated_gradients_method();
GradientMethod attnlrp_method();
GradientMethod cp_lrp_method();

const std::vector<GradientMethod>& gradient_methods();
// nullptr when the name is not a gradient method.
const GradientMethod* find_gradient_method(std::string_view name);

// The single gradient point of methods that use the input itself.
std::vector<std::pair<double, double>> input_point(const MethodOptions&);

// Sum over the hidden dimension of x * grad (signed, or magnitudes with --abs): the reduction of
// input x gradient and of the LRP methods.
torch::Tensor input_times_gradient(const torch::Tensor& x, const torch::Tensor& baseline, const torch::Tensor& grad,
                                   const MethodOptions& options);

}  // namespace pizza
