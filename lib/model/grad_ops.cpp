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
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_up, Activation a) {
    auto halves = gate_up.chunk(2, -1);
    const auto &gate = halves[0], &up = halves[1];
    // act'(gate) by autograd on the unbatched gate (cheap next to the vectorised backward, and
    // exact for every activation the configs name).
    torch::Tensor act, slope;
    {
      torch::AutoGradMode on(true);
      auto g = gate.detach().requires_grad_(true);
      auto y = activation(a, g);
      slope = torch::autograd::grad({y}, {g}, {torch::ones_like(y)})[0];
      act = y.detach();
    }
    // d out / d [gate | up] = [act'(gate) * up | act(gate)], kept as [..., 2, I].
    ctx->save_for_backward({torch::stack({slope * up, act}, -2)});
    return act * up;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& g = grads[0];
    auto sizes = g.sizes().vec();  // logical sizes (under vmap, without the batch dimension)
    sizes.back() *= 2;
    return {(g.unsqueeze(-2) * ctx->get_saved_variables()[0]).reshape(sizes), torch::Tensor()};
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
                               bool one_plus) {
    auto p = rms_parts(x, eps);
    ctx->save_for_backward({p.h, p.r, weight});
    ctx->saved_data["one_plus"] = one_plus;
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
    auto dot = (g * (h * scale)).sum(-1, /*keepdim=*/true);
    auto gx = torch::addcmul(g * (r * scale), h * (r / static_cast<double>(h.size(-1))), dot, -1);
    const auto in = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    return {rebatch(gx.to(in), level), torch::Tensor(), torch::Tensor(), torch::Tensor()};
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

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool one_plus) {
  if (!differentiable(x)) return rms_scale(rms_parts(x, eps), x, weight, one_plus);
  return RmsNorm::apply(x, weight, eps, one_plus);
}

torch::Tensor activation(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::silu: return pizza::silu(x);
    case Activation::gelu_exact: return torch::gelu(x);
    case Activation::gelu_tanh: return torch::gelu(x, "tanh");
    case Activation::relu: return torch::relu(x);
  }
  return x;
}

torch::Tensor gated_activation(const torch::Tensor& gate_up, Activation a) {
  if (!differentiable(gate_up)) {
    auto halves = gate_up.chunk(2, -1);
    return activation(a, halves[0]) * halves[1];
  }
  return GatedActivation::apply(gate_up, a);
}

torch::Tensor silu(const torch::Tensor& x) {
  if (!differentiable(x)) return torch::silu(x);
  return Silu::apply(x);
}

}  // namespace pizza
