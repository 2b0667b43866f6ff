// The written backward formulas (attention core, RMSNorm, rotary embeddings, gated activations)
// against autograd through the plain operations they replace, in float64.
#include "model/attention_core.h"
#include "model/grad_ops.h"
#include "support_torch/reference.h"
// libtorch pulls in glog, whose CHECK() aborts the process instead of reporting to Catch;
// drop it before Catch defines its own.
#undef CHECK
#include <catch2/catch.hpp>

using namespace pizza;

namespace {

const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// Max |a - b| / max |b| over the gradients of `written` and `plain` w.r.t. `inputs`, for one
// random grad output. Every check below is float64 with 1e-12: these formulas are a handful of
// operations over at most 7-term sums (rounding ~1e-15, whatever the BLAS kernel or thread
// count), while a wrong term in a written backward shows at >= 1e-3.
double gradient_gap(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& written,
                    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& plain,
                    std::vector<torch::Tensor> inputs) {
  for (auto& t : inputs) t = t.detach().requires_grad_(true);
  auto yw = written(inputs), yp = plain(inputs);
  REQUIRE(torch::allclose(yw, yp, 1e-12, 1e-12));  // float64: a few ops of rounding ~1e-16, any formula slip >= 1e-3
  auto seed = torch::randn(yw.sizes(), f64);
  auto gw = torch::autograd::grad({yw}, inputs, {seed});
  auto gp = torch::autograd::grad({yp}, inputs, {seed});
  double worst = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    worst = std::max(worst, ((gw[i] - gp[i]).abs().max() / gp[i].abs().max()).item<double>());
  return worst;
}

}  // namespace

TEST_CASE("attention core: grouped heads, mask and soft-capping differentiate as the plain computation") {
  torch::manual_seed(7);
  const int64_t B = 2, H = 6, G = 2, T = 5, S = 7, hd = 4;
  auto mask = torch::zeros({B, 1, T, S}, f64).masked_fill(torch::rand({B, 1, T, S}) < 0.3, -1e300);
  mask.select(3, 0).fill_(0);  // every query sees at least one key
  for (std::optional<double> cap : {std::optional<double>{}, std::optional<double>{1.5}}) {
    INFO("softcap " << (cap ? *cap : 0.0));
    auto plain = [&](const std::vector<torch::Tensor>& in) {
      auto k = in[1].repeat_interleave(H / G, 1), v = in[2].repeat_interleave(H / G, 1);
      auto scores = torch::matmul(in[0], k.transpose(2, 3)) * 0.3;
      if (cap) scores = torch::tanh(scores / *cap) * *cap;
      return torch::matmul(torch::softmax(scores + mask, -1), v);
    };
    auto written = [&](const std::vector<torch::Tensor>& in) { return attention_core(in[0], in[1], in[2], mask, 0.3, cap); };
    CHECK(gradient_gap(written, plain, {torch::randn({B, H, T, hd}, f64), torch::randn({B, G, S, hd}, f64),
                                        torch::randn({B, G, S, hd}, f64)}) < 1e-12);
  }
}

TEST_CASE("RMSNorm, rotary embeddings and gated activations differentiate as the plain computation") {
  torch::manual_seed(11);
  auto x = torch::randn({2, 3, 8}, f64), w = torch::randn({8}, f64);
  for (bool one_plus : {false, true}) {
    auto plain = [&](const std::vector<torch::Tensor>& in) {
      auto h = in[0] * torch::rsqrt(in[0].pow(2).mean(-1, true) + 1e-6);
      return (one_plus ? 1.0 + w : w) * h;
    };
    auto written = [&](const std::vector<torch::Tensor>& in) { return rms_norm(in[0], w, 1e-6, one_plus); };
    CHECK(gradient_gap(written, plain, {x}) < 1e-12);
  }
  auto c = torch::randn({3, 8}, f64), s = torch::randn({3, 8}, f64);
  auto half = [&](const std::vector<torch::Tensor>& in) {
    return in[0] * c + torch::cat({-in[0].slice(-1, 4), in[0].slice(-1, 0, 4)}, -1) * s;
  };
  CHECK(gradient_gap([&](const auto& in) { return rotary(in[0], c, s, false); }, half, {x}) < 1e-12);
  auto pairs = [&](const std::vector<torch::Tensor>& in) {
    auto p = in[0].view({2, 3, 4, 2});
    return in[0] * c + torch::stack({-p.select(-1, 1), p.select(-1, 0)}, -1).view({2, 3, 8}) * s;
  };
  CHECK(gradient_gap([&](const auto& in) { return rotary(in[0], c, s, true); }, pairs, {x}) < 1e-12);
  for (auto act : {Activation::silu, Activation::gelu_exact, Activation::gelu_tanh, Activation::relu}) {
    INFO("activation " << static_cast<int>(act));
    auto plain = [&](const std::vector<torch::Tensor>& in) {
      auto halves = in[0].chunk(2, -1);
      auto g = halves[0];
      auto a = act == Activation::silu        ? g * torch::sigmoid(g)
               : act == Activation::gelu_exact ? torch::gelu(g)
               : act == Activation::gelu_tanh  ? torch::gelu(g, "tanh")
                                               : torch::relu(g);
      return a * halves[1];
    };
    CHECK(gradient_gap([&](const auto& in) { return gated_activation(in[0], act); }, plain, {x}) < 1e-12);
  }
}

namespace {

// lxt's building blocks, in plain autograd: a value whose gradient is divided by `factor`
// (divide_gradient), and act(x) whose gradient is act(x) / (x + 1e-10) (identity_rule_implicit).
// Both keep the forward value exactly (v + (w - w) adds an exact 0).
torch::Tensor divide_gradient(const torch::Tensor& x, double factor) { return x.detach() + (x - x.detach()) / factor; }

torch::Tensor plain_activation(Activation act, const torch::Tensor& g) {
  return act == Activation::silu        ? g * torch::sigmoid(g)
         : act == Activation::gelu_exact ? torch::gelu(g)
         : act == Activation::gelu_tanh  ? torch::gelu(g, "tanh")
                                         : torch::relu(g);
}

torch::Tensor identity_rule(Activation act, const torch::Tensor& x) {
  auto y = plain_activation(act, x);
  auto lin = x * (y / (x + 1e-10)).detach();
  return y.detach() + (lin - lin.detach());
}

}  // namespace

// The relevance rules (model/relevance.h) against the authors' formulation of each one as
// stop-gradients and gradient divisions through ordinary autograd (lxt/efficient/patches.py),
// in float64 with gradient_gap's 1e-12.
TEST_CASE("relevance rules equal lxt's stop-gradient formulations") {
  torch::manual_seed(13);
  auto x = torch::randn({2, 3, 8}, f64), w = torch::randn({8}, f64), b = torch::randn({8}, f64);
  for (auto rules : {Relevance::attnlrp, Relevance::cp_lrp}) {
    INFO("rules " << static_cast<int>(rules));
    for (bool one_plus : {false, true}) {
      auto plain = [&](const std::vector<torch::Tensor>& in) {
        return (one_plus ? 1.0 + w : w) * (in[0] * torch::rsqrt(in[0].pow(2).mean(-1, true) + 1e-6).detach());
      };
      CHECK(gradient_gap([&](const auto& in) { return rms_norm(in[0], w, 1e-6, one_plus, rules); }, plain, {x}) < 1e-12);
    }
    for (bool affine : {false, true}) {
      // The mean stays differentiable, the standard deviation does not.
      auto plain = [&](const std::vector<torch::Tensor>& in) {
        auto centred = in[0] - in[0].mean(-1, true);
        auto y = centred / (centred.pow(2).mean(-1, true) + 1e-5).sqrt().detach();
        return affine ? y * w + b : y;
      };
      auto written = [&](const std::vector<torch::Tensor>& in) {
        return layer_norm(in[0], affine ? w : torch::Tensor(), affine ? b : torch::Tensor(), 1e-5, rules);
      };
      CHECK(gradient_gap(written, plain, {x}) < 1e-12);
    }
    for (auto act : {Activation::silu, Activation::gelu_exact, Activation::gelu_tanh, Activation::relu}) {
      INFO("activation " << static_cast<int>(act));
      CHECK(gradient_gap([&](const auto& in) { return activation(act, in[0], rules); },
                         [&](const auto& in) { return identity_rule(act, in[0]); }, {x}) < 1e-12);
      auto plain = [&](const std::vector<torch::Tensor>& in) {
        auto halves = in[0].chunk(2, -1);
        if (rules == Relevance::cp_lrp) return plain_activation(act, halves[0].detach()) * halves[1];
        return divide_gradient(identity_rule(act, halves[0]) * halves[1], 2);
      };
      CHECK(gradient_gap([&](const auto& in) { return gated_activation(in[0], act, rules); }, plain, {x}) < 1e-12);
    }
    const int64_t B = 2, H = 6, G = 2, T = 5, S = 7, hd = 4;
    auto mask = torch::zeros({B, 1, T, S}, f64).masked_fill(torch::rand({B, 1, T, S}) < 0.3, -1e300);
    mask.select(3, 0).fill_(0);
    for (std::optional<double> cap : {std::optional<double>{}, std::optional<double>{1.5}}) {
      INFO("softcap " << (cap ? *cap : 0.0));
      auto plain = [&](const std::vector<torch::Tensor>& in) {
        // q, k and v as lxt's attention wrapper sees them: before repeat_kv.
        auto q = rules == Relevance::attnlrp ? divide_gradient(in[0], 4) : in[0].detach();
        auto k = rules == Relevance::attnlrp ? divide_gradient(in[1], 4) : in[1].detach();
        auto v = rules == Relevance::attnlrp ? divide_gradient(in[2], 2) : in[2];
        k = k.repeat_interleave(H / G, 1);
        v = v.repeat_interleave(H / G, 1);
        auto scores = torch::matmul(q, k.transpose(2, 3)) * 0.3;
        if (cap) scores = torch::tanh(scores / *cap) * *cap;
        return torch::matmul(torch::softmax(scores + mask, -1), v);
      };
      auto written = [&](const std::vector<torch::Tensor>& in) {
        return attention_core(in[0], in[1], in[2], mask, 0.3, cap, rules);
      };
      auto q = torch::randn({B, H, T, hd}, f64), k = torch::randn({B, G, S, hd}, f64), v = torch::randn({B, G, S, hd}, f64);
      if (rules == Relevance::cp_lrp) {
        // No gradient reaches q and k: the written backward leaves them undefined, which autograd
        // returns as zeros; compare v's gradient and check q's and k's are zero.
        std::vector<torch::Tensor> in = {q.requires_grad_(true), k.requires_grad_(true), v.requires_grad_(true)};
        auto seed = torch::randn({B, H, T, hd}, f64);
        auto gw = torch::autograd::grad({written(in)}, in, {seed}, false, false, /*allow_unused=*/true);
        auto gv = torch::autograd::grad({plain(in)}, {in[2]}, {seed})[0];
        CHECK((!gw[0].defined() || gw[0].abs().max().item<double>() == 0));
        CHECK((!gw[1].defined() || gw[1].abs().max().item<double>() == 0));
        CHECK(((gw[2] - gv).abs().max() / gv.abs().max()).item<double>() < 1e-12);
      } else {
        CHECK(gradient_gap(written, plain, {q, k, v}) < 1e-12);
      }
    }
  }
}
