#include "model/grad_ops.h"

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

// out[b, k] = x[b, index[b, k]] as a product with a one-hot selector: its backward is a
// matrix product (vmap-batched) instead of index_put (looped).
torch::Tensor select_rows_onehot(const torch::Tensor& x, const torch::Tensor& index) {
  auto positions = torch::arange(x.size(1), index.options()).view({1, 1, -1});
  auto selector = (index.unsqueeze(-1) == positions).to(x.scalar_type());  // [B, K, T]
  return torch::matmul(selector, x);
}

}  // namespace

torch::Tensor softmax_last(const torch::Tensor& x, torch::Dtype dtype) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return torch::softmax(x, -1, dtype);
  return Softmax::apply(x, dtype);
}

torch::Tensor log_softmax_last(const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return torch::log_softmax(x, -1);
  return LogSoftmax::apply(x);
}

torch::Tensor pick_last(const torch::Tensor& x, const torch::Tensor& index) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return x.gather(-1, index.unsqueeze(-1)).squeeze(-1);
  // Exactly x[..., index]: every other term of the sum is a product with 0.
  auto positions = torch::arange(x.size(-1), index.options());
  return (x * (index.unsqueeze(-1) == positions).to(x.scalar_type())).sum(-1);
}

torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& index) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) {
    auto rows = torch::arange(x.size(0), index.options()).view({-1, 1});
    return x.index({rows, index});
  }
  return select_rows_onehot(x, index);
}

torch::Tensor silu(const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return torch::silu(x);
  return Silu::apply(x);
}

}  // namespace pizza
