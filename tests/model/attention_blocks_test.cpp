// The attention core's query blocking (model/attention_core_blocks.h) against its single
// product. Normal tests run short prompts, which never block; here a long-enough input with small
// blocks exercises the blocked forward and backward, in float64: the blocks drop only keys whose
// probability is exactly 0, so the two paths differ by summation order alone (~1e-16), while a
// wrong slice or a missed key shows at >= 1e-3.
#include <ATen/VmapMode.h>

#include <limits>

#include "model/attention_core.h"
#include "model/attention_core_blocks.h"
// libtorch pulls in glog, whose CHECK() aborts the process instead of reporting to Catch;
// drop it before Catch defines its own.
#undef CHECK
#include <catch2/catch.hpp>

using namespace pizza;

namespace {

const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

double gap(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined() ? 0.0 : 1.0;
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

// The gradients of q, k and v for N grad outputs in one backward pass under vmap, as
// attribution/gradient.cpp runs it: [N, ...] each (undefined where none reaches).
std::vector<torch::Tensor> batched_grads(const torch::Tensor& out, const std::vector<torch::Tensor>& in,
                                         const torch::Tensor& seeds) {
  const auto level = at::impl::VmapMode::increment_nesting();
  auto batched = at::_add_batch_dim(seeds, 0, level);
  auto g = torch::autograd::grad({out}, in, {batched}, /*retain_graph=*/false, false, /*allow_unused=*/true);
  for (auto& t : g)
    if (t.defined()) t = at::_remove_batch_dim(t, level, seeds.size(0), 0);
  at::impl::VmapMode::decrement_nesting();
  return g;
}

}  // namespace

TEST_CASE("attention core: query blocks compute as the single product (causal, left padding, sliding window)") {
  torch::manual_seed(3);
  // T queries after `past` cached keys; batch row 1 left-padded, so its padding queries see no
  // key at all (all masked: their softmax spreads over every key, which the blocks must keep).
  const int64_t B = 2, H = 6, G = 2, past = 5, T = 70, S = past + T, hd = 4, pad = 9;
  const double neg = std::numeric_limits<float>::lowest();
  auto qi = torch::arange(past, S, torch::kLong).view({T, 1}), kj = torch::arange(S, torch::kLong).view({1, S});
  auto key_ok = torch::ones({B, 1, 1, S}, torch::kBool);
  key_ok.select(0, 1).slice(2, 0, past + pad).fill_(false);
  const AttentionBlocking single{256, std::numeric_limits<int64_t>::max()}, blocked{16, 0};
  for (bool window : {false, true}) {
    auto ok = (kj <= qi).view({1, 1, T, S}) & key_ok;
    if (window) ok = ok & ((qi - kj) < 20).view({1, 1, T, S});
    const auto mask = torch::zeros({B, 1, T, S}, f64).masked_fill(ok.logical_not(), neg);
    for (std::optional<double> cap : {std::optional<double>{}, std::optional<double>{1.5}}) {
      for (auto rules : {Relevance::gradient, Relevance::attnlrp, Relevance::cp_lrp}) {
        INFO("window " << window << ", softcap " << (cap ? *cap : 0.0) << ", rules " << static_cast<int>(rules));
        std::vector<torch::Tensor> in = {torch::randn({B, H, T, hd}, f64), torch::randn({B, G, S, hd}, f64),
                                         torch::randn({B, G, S, hd}, f64)};
        {
          torch::NoGradGuard no_grad;  // the forward without autograd (generation, perturbation batches)
          CHECK(gap(attention_core(in[0], in[1], in[2], mask, 0.3, cap, rules, blocked),
                    attention_core(in[0], in[1], in[2], mask, 0.3, cap, rules, single)) < 1e-12);
        }
        for (auto& t : in) t.requires_grad_(true);
        auto yb = attention_core(in[0], in[1], in[2], mask, 0.3, cap, rules, blocked);
        auto ys = attention_core(in[0], in[1], in[2], mask, 0.3, cap, rules, single);
        CHECK(gap(yb, ys) < 1e-12);
        // One grad output, then three under vmap.
        auto seed = torch::randn({B, H, T, hd}, f64);
        auto gb = torch::autograd::grad({yb}, in, {seed}, true, false, /*allow_unused=*/true);
        auto gs = torch::autograd::grad({ys}, in, {seed}, true, false, /*allow_unused=*/true);
        auto seeds = torch::randn({3, B, H, T, hd}, f64);
        auto vb = batched_grads(yb, in, seeds), vs = batched_grads(ys, in, seeds);
        for (size_t i = 0; i < in.size(); ++i) {
          INFO("input " << i);
          CHECK(gap(gb[i], gs[i]) < 1e-12);
          CHECK(gap(vb[i], vs[i]) < 1e-12);
          if (rules != Relevance::cp_lrp || i == 2) CHECK((gs[i].defined() && gs[i].abs().max().item<double>() > 0));
        }
      }
    }
  }
}
