#include "model/grad_ops.h"

#include "model/vmap_physical.h"

namespace pizza {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Softmax : torch::autograd::Function<Softmax> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, torch::Dtype dtype) {
    auto y = torch::softmax(x, -1, dtype);
    ctx->save_for_backward({y});
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(x.scalar_type());
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto y = ctx->get_saved_variables()[0];
    const auto& g = grads[0];
    // d softmax: y * (g - <g, y>) along the softmax dimension.
    auto gx = y * (g - (g * y).sum(-1, /*keepdim=*/true));
    const auto in = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    return {gx.to(in), torch::Tensor()};
  }
};

struct LogSoftmax : torch::autograd::Function<LogSoftmax> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    auto y = torch::log_softmax(x, -1);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto y = ctx->get_saved_variables()[0];
    const auto& g = grads[0];
    // d log_softmax: g - softmax * sum(g).
    return {g - y.exp() * g.sum(-1, /*keepdim=*/true)};
  }
};

struct Silu : torch::autograd::Function<Silu> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    // The derivative depends on x only: computed once here on the unbatched input, so the
    // (vectorised) backward is a single multiplication.
    // d/dx x*s(x) = s + x*s*(1-s) = s * (1 + x * (1 - s)).
    const auto s = torch::sigmoid(x);
    ctx->save_for_backward({s * (1 + x * (1 - s))});
    return torch::silu(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {grads[0] * ctx->get_saved_variables()[0]};
  }
};

// The dtype relevance factors are computed in: float32 at least (lxt normalises in float32, and
// bfloat16's 8 bits would make act(x) / x visibly wrong near 0).
torch::ScalarType rule_dtype(const torch::Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// act(x) / (x + 1e-10) in the rule dtype: the identity rule's factor, which turns x * gradient
// into act(x) * incoming gradient. 1e-10 is lxt's epsilon (kept so float64 results match the
// authors' rules to rounding); where x + 1e-10 is exactly 0 the factor is the ratio's limit at 0,
// act'(0), instead of a division by zero.
torch::Tensor identity_ratio(Activation a, const torch::Tensor& x) {
  const auto xc = x.to(rule_dtype(x));
  const auto den = xc + 1e-10;
  const auto zero = den == 0;
  const double slope_at_zero = a == Activation::relu ? 0.0 : 0.5;  // SiLU and every GELU: 1/2
  return (activation(a, xc) / den.masked_fill(zero, 1.0)).masked_fill(zero, slope_at_zero);
}

// The identity rule on an elementwise activation: forward act(x), backward g * act(x) / x.
struct IdentityRule : torch::autograd::Function<IdentityRule> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, Activation a) {
    ctx->save_for_backward({identity_ratio(a, x)});
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(x.scalar_type());
    return activation(a, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto in = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    return {(grads[0] * ctx->get_saved_variables()[0]).to(in), torch::Tensor()};
  }
};

torch::Tensor rotate(const torch::Tensor& x, bool interleaved) {
  if (interleaved) {
    // reshape, not unflatten/flatten: vmap has no batching rule for those.
    auto sizes = x.sizes().vec();
    sizes.back() /= 2;
    sizes.push_back(2);
    auto pairs = x.reshape(sizes);
    return torch::stack({-pairs.select(-1, 1), pairs.select(-1, 0)}, -1).reshape(x.sizes());
  }
  auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

torch::Tensor rotary_value(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool interleaved) {
  return x * cos + rotate(x, interleaved) * sin;
}

struct Rotary : torch::autograd::Function<Rotary> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, bool interleaved) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["interleaved"] = interleaved;
    return rotary_value(x, cos, sin, interleaved);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grads[0];
    // A quarter turn is antisymmetric (rotate^T = -rotate), so the backward is the same shape
    // of computation: g * cos - rotate(g * sin). Autograd's own backward of the slices and
    // concatenation would zero-fill buffers and add them up instead.
    return {g * saved[0] - rotate(g * saved[1], ctx->saved_data["interleaved"].toBool()), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

struct GatedActivation : torch::autograd::Function<GatedActivation> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_up, Activation a, Relevance rules) {
    auto halves = gate_up.chunk(2, -1);
    const auto &gate = halves[0], &up = halves[1];
    torch::Tensor act = activation(a, gate.detach()), d_gate, d_up;
    switch (rules) {
      case Relevance::gradient: {
        // act'(gate) by autograd on the unbatched gate (cheap next to the vectorised backward,
        // and exact for every activation the configs name).
        torch::AutoGradMode on(true);
        auto g = gate.detach().requires_grad_(true);
        auto y = activation(a, g);
        d_gate = torch::autograd::grad({y}, {g}, {torch::ones_like(y)})[0] * up;
        d_up = act;
        break;
      }
      case Relevance::attnlrp:
        // Uniform rule on the product (each factor gets half), identity rule on act.
        d_gate = (identity_ratio(a, gate) * up.to(rule_dtype(gate)) * 0.5).to(gate.scalar_type());
        d_up = act * 0.5;
        break;
      case Relevance::cp_lrp:  // the gate branch is a constant
        d_gate = torch::zeros_like(act);
        d_up = act;
        break;
    }
    // d out / d [gate | up], kept as [..., 2, I].
    ctx->save_for_backward({torch::stack({d_gate, d_up}, -2)});
    return act * up;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& g = grads[0];
    auto sizes = g.sizes().vec();  // logical sizes (under vmap, without the batch dimension)
    sizes.back() *= 2;
    return {(g.unsqueeze(-2) * ctx->get_saved_variables()[0]).reshape(sizes), torch::Tensor(), torch::Tensor()};
  }
};

struct RmsNormParts {
  torch::Tensor h, r;  // normalised x and 1 / rms(x), in the normalisation dtype
};

RmsNormParts rms_parts(const torch::Tensor& x, double eps) {
  const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto xc = x.to(compute);
  auto r = torch::rsqrt(xc.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return {xc * r, r};
}

torch::Tensor rms_scale(const RmsNormParts& p, const torch::Tensor& x, const torch::Tensor& weight, bool one_plus) {
  if (one_plus) return (p.h * (1.0 + weight.to(p.h.scalar_type()))).to(x.scalar_type());
  return weight * p.h.to(x.scalar_type());
}

struct RmsNorm : torch::autograd::Function<RmsNorm> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, double eps,
                               bool one_plus, bool constant_scale) {
    auto p = rms_parts(x, eps);
    ctx->save_for_backward({p.h, p.r, weight});
    ctx->saved_data["one_plus"] = one_plus;
    ctx->saved_data["constant_scale"] = constant_scale;
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(x.scalar_type());
    return rms_scale(p, x, weight, one_plus);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &r = saved[1], &w = saved[2];
    const auto wc = w.to(h.scalar_type());
    const auto scale = ctx->saved_data["one_plus"].toBool() ? 1.0 + wc : wc;
    // y = s h with h = x r, r = (mean(x^2) + eps)^-1/2:  dx = r (s g) - (r h / D) <s g, h>.
    // The factors that do not depend on g are formed once on the unbatched activations, so the
    // (vectorised, N times larger) gradient takes two products, a sum and a fused
    // multiply-subtract instead of six passes.
    // (addcmul has no vmap rule: computed on the physical gradient [N, ...].)
    auto [g, level] = unbatch(grads[0]);
    g = g.to(h.scalar_type());
    const auto in = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    const torch::Tensor none;
    // LRP: 1 / rms(x) is a constant, so only the first term remains (lxt's stop-gradient).
    if (ctx->saved_data["constant_scale"].toBool()) return {rebatch((g * (r * scale)).to(in), level), none, none, none, none};
    auto dot = (g * (h * scale)).sum(-1, /*keepdim=*/true);
    auto gx = torch::addcmul(g * (r * scale), h * (r / static_cast<double>(h.size(-1))), dot, -1);
    return {rebatch(gx.to(in), level), none, none, none, none};
  }
};

// The affine parameters of a LayerNorm, either possibly undefined (autograd's apply() refuses
// undefined tensor arguments; wrapped, they pass as a constant).
struct Affine {
  torch::Tensor weight, bias;
};

// LayerNorm under LRP rules: forward as torch::layer_norm, backward with the standard deviation
// constant. y = (x - mean(x)) * s with s = weight / std(x) fixed: dx = c - mean(c), c = s g.
struct LayerNormLrp : torch::autograd::Function<LayerNormLrp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const Affine& affine, double eps) {
    const auto &weight = affine.weight, &bias = affine.bias;
    const auto xc = x.to(rule_dtype(x));
    auto s = torch::rsqrt(xc.var(-1, /*unbiased=*/false, /*keepdim=*/true) + eps);
    if (weight.defined()) s = s * weight.to(xc.scalar_type());
    ctx->save_for_backward({s});
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(x.scalar_type());
    return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables()[0];
    const auto in = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    auto [g, level] = unbatch(grads[0]);
    auto c = g.to(s.scalar_type()) * s;
    auto gx = c - c.sum(-1, /*keepdim=*/true) / static_cast<double>(c.size(-1));
    return {rebatch(gx.to(in), level), torch::Tensor(), torch::Tensor()};
  }
};

// Whether autograd will record an operation on x: otherwise the plain op is used.
bool differentiable(const torch::Tensor& x) { return torch::GradMode::is_enabled() && x.requires_grad(); }

// out[b, k] = x[b, index[b, k]] as a product with a one-hot selector: its backward is a
// matrix product (vmap-batched) instead of index_put (looped).
torch::Tensor select_rows_onehot(const torch::Tensor& x, const torch::Tensor& index) {
  auto positions = torch::arange(x.size(1), index.options()).view({1, 1, -1});
  auto selector = (index.unsqueeze(-1) == positions).to(x.scalar_type());  // [B, K, T]
  return torch::matmul(selector, x);
}

}  // namespace

torch::Tensor softmax_last(const torch::Tensor& x, torch::Dtype dtype) {
  if (!differentiable(x)) return torch::softmax(x, -1, dtype);
  return Softmax::apply(x, dtype);
}

torch::Tensor log_softmax_last(const torch::Tensor& x) {
  if (!differentiable(x)) return torch::log_softmax(x, -1);
  return LogSoftmax::apply(x);
}

torch::Tensor pick_last(const torch::Tensor& x, const torch::Tensor& index) {
  if (!differentiable(x)) return x.gather(-1, index.unsqueeze(-1)).squeeze(-1);
  // Exactly x[..., index]: every other term of the sum is a product with 0.
  auto positions = torch::arange(x.size(-1), index.options());
  return (x * (index.unsqueeze(-1) == positions).to(x.scalar_type())).sum(-1);
}

torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& index) {
  if (!differentiable(x)) {
    auto rows = torch::arange(x.size(0), index.options()).view({-1, 1});
    return x.index({rows, index});
  }
  return select_rows_onehot(x, index);
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool interleaved) {
  if (!differentiable(x)) return rotary_value(x, cos, sin, interleaved);
  return Rotary::apply(x, cos, sin, interleaved);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool one_plus,
                       Relevance rules) {
  if (!differentiable(x)) return rms_scale(rms_parts(x, eps), x, weight, one_plus);
  return RmsNorm::apply(x, weight, eps, one_plus, rules != Relevance::gradient);
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                         Relevance rules) {
  if (rules == Relevance::gradient || !differentiable(x)) return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  return LayerNormLrp::apply(x, Affine{weight, bias}, eps);
}

torch::Tensor activation(Activation a, const torch::Tensor& x, Relevance rules) {
  if (rules != Relevance::gradient && differentiable(x)) return IdentityRule::apply(x, a);
  switch (a) {
    case Activation::silu: return pizza::silu(x);
    case Activation::gelu_exact: return torch::gelu(x);
    case Activation::gelu_tanh: return torch::gelu(x, "tanh");
    case Activation::relu: return torch::relu(x);
  }
  return x;
}

torch::Tensor gated_activation(const torch::Tensor& gate_up, Activation a, Relevance rules) {
  if (!differentiable(gate_up)) {
    auto halves = gate_up.chunk(2, -1);
    return activation(a, halves[0]) * halves[1];
  }
  return GatedActivation::apply(gate_up, a, rules);
}

torch::Tensor silu(const torch::Tensor& x) {
  if (!differentiable(x)) return torch::silu(x);
  return Silu::apply(x);
}

}  // namespace pizza
