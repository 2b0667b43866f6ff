// AttnLRP and CP-LRP written out layer by layer, independently of pizza's model code: a
// float64 forward of the dense decoder families built from the checkpoint's canonical weights
// and the config, with every relevance rule spelled out in lxt's form (stop-gradients and
// gradient divisions through ordinary autograd: lxt/efficient/patches.py), so none of pizza's
// modified backward functions (grad_ops.cpp, attention_core.cpp) is involved. Relevance =
// embedding x that surrogate's gradient, row by row; it must equal `attnlrp` / `cp-lrp` on one
// fixture of each norm and activation kind.
#include "support/torch_catch.h"

#include <cmath>

#include "attribution/gradient.h"
#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "support/paths.h"
#include "support_torch/reference.h"

using namespace pizza;
using torch::Tensor;

namespace {

// The gradient of the result is the gradient of x divided by `factor`; the value is x exactly.
Tensor divide_gradient(const Tensor& x, double factor) { return x.detach() + (x - x.detach()) / factor; }

Tensor act(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::silu: return x * torch::sigmoid(x);
    case Activation::gelu_exact: return torch::gelu(x);
    case Activation::gelu_tanh: return torch::gelu(x, "tanh");
    case Activation::relu: return torch::relu(x);
  }
  return x;
}

// Identity rule: value act(x), gradient act(x) / (x + 1e-10) times the incoming one.
Tensor identity_rule(Activation a, const Tensor& x) {
  auto y = act(a, x);
  auto lin = x * (y / (x + 1e-10)).detach();
  return y.detach() + (lin - lin.detach());
}

class ExplicitLrp {
 public:
  ExplicitLrp(const ModelConfig& cfg, const ParamSource& p, bool cp) : cfg_(cfg), p_(p), cp_(cp) {}

  // Logits [T, V] of embeds [T, D] (the raw table rows).
  Tensor logits(const Tensor& embeds) const {
    const auto T = embeds.size(0);
    auto x = embeds * cfg_.embedding_scale;
    auto pos = torch::arange(T, torch::kLong);
    if (cfg_.positions == PositionKind::learned) x = x + p_.get("pos_embed.weight").index_select(0, pos);
    for (int64_t i = 0; i < cfg_.num_layers; ++i) x = layer(x, i);
    auto h = norm("final_norm", x);
    auto z = linear(h, "lm_head");
    z = z / cfg_.logits_divisor * cfg_.logits_multiplier;
    if (cfg_.final_logit_softcap) z = torch::tanh(z / *cfg_.final_logit_softcap) * *cfg_.final_logit_softcap;
    return z;
  }

 private:
  Tensor linear(const Tensor& x, const std::string& name) const {
    return torch::nn::functional::linear(x, p_.get(name + ".weight"), p_.maybe(name + ".bias"));
  }

  // Every norm: its scale a constant (the LayerNorm's mean is not).
  Tensor norm(const std::string& name, const Tensor& x) const {
    auto w = p_.maybe(name + ".weight"), b = p_.maybe(name + ".bias");
    if (cfg_.norm == NormKind::layer) {
      auto c = x - x.mean(-1, true);
      auto y = c / (c.pow(2).mean(-1, true) + cfg_.norm_eps).sqrt().detach();
      if (w.defined()) y = y * w;
      if (b.defined()) y = y + b;
      return y;
    }
    auto h = x * torch::rsqrt(x.pow(2).mean(-1, true) + cfg_.norm_eps).detach();
    return (cfg_.norm == NormKind::rms_one_plus ? 1.0 + w : w) * h;
  }

  // Rotate-half RoPE on the first rotary_dim dimensions of [heads, T, hd].
  Tensor rope(const Tensor& x) const {
    const auto T = x.size(1), rot = cfg_.rotary_dim();
    auto freqs = torch::arange(T, torch::kFloat64).unsqueeze(-1) * rope_inv_freq(cfg_);
    auto angle = torch::cat({freqs, freqs}, -1);
    auto r = x.slice(-1, 0, rot), rest = x.slice(-1, rot);
    auto turned = torch::cat({-r.slice(-1, rot / 2), r.slice(-1, 0, rot / 2)}, -1);
    return torch::cat({r * angle.cos() + turned * angle.sin(), rest}, -1);
  }

  Tensor attention(const Tensor& h, int64_t i) const {
    const auto T = h.size(0), H = cfg_.num_heads, G = cfg_.num_kv_heads, hd = cfg_.head_dim;
    const auto pre = "layers." + std::to_string(i) + ".attn.";
    auto q = linear(h, pre + "q").view({T, H, hd}).transpose(0, 1);
    auto k = linear(h, pre + "k").view({T, G, hd}).transpose(0, 1);
    auto v = linear(h, pre + "v").view({T, G, hd}).transpose(0, 1);
    if (cfg_.positions == PositionKind::rope) {
      q = rope(q);
      k = rope(k);
    }
    if (cp_) {  // the probabilities are constants
      q = q.detach();
      k = k.detach();
    } else {  // uniform rule on q k^T and on P v
      q = divide_gradient(q, 4);
      k = divide_gradient(k, 4);
      v = divide_gradient(v, 2);
    }
    k = k.repeat_interleave(H / G, 0);
    v = v.repeat_interleave(H / G, 0);
    auto s = torch::matmul(q, k.transpose(1, 2)) * cfg_.attention_scale.value_or(1.0 / std::sqrt(static_cast<double>(hd)));
    if (cfg_.attn_logit_softcap) s = torch::tanh(s / *cfg_.attn_logit_softcap) * *cfg_.attn_logit_softcap;
    auto qi = torch::arange(T).view({T, 1}), kj = torch::arange(T).view({1, T});
    auto allowed = kj <= qi;
    if (cfg_.sliding_window && cfg_.layer_uses_sliding_window(i)) allowed = allowed & ((qi - kj) < *cfg_.sliding_window);
    s = s.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    auto o = torch::matmul(torch::softmax(s, -1), v).transpose(0, 1).reshape({T, H * hd});
    return linear(o, pre + "o");
  }

  Tensor mlp(const Tensor& h, int64_t i) const {
    const auto pre = "layers." + std::to_string(i) + ".mlp.";
    if (!cfg_.gated_mlp) return linear(identity_rule(cfg_.activation, linear(h, pre + "up")), pre + "down");
    auto gate = linear(h, pre + "gate"), up = linear(h, pre + "up");
    auto prod = cp_ ? act(cfg_.activation, gate.detach()) * up
                    : divide_gradient(identity_rule(cfg_.activation, gate) * up, 2);
    return linear(prod, pre + "down");
  }

  Tensor layer(const Tensor& x, int64_t i) const {
    const auto pre = "layers." + std::to_string(i) + ".";
    const double rm = cfg_.residual_multiplier;
    auto h = cfg_.pre_norm ? norm(pre + "attn_norm", x) : x;
    auto a = attention(h, i);
    if (cfg_.sandwich_norm) a = norm(pre + "attn_out_norm", a);
    if (cfg_.parallel_residual) {
      auto m = mlp(cfg_.parallel_shared_norm ? h : norm(pre + "mlp_norm", x), i);
      return x + a + m;
    }
    auto y = x + a * rm;
    auto m = mlp(cfg_.pre_norm ? norm(pre + "mlp_norm", y) : y, i);
    if (cfg_.sandwich_norm) m = norm(pre + "mlp_out_norm", m);
    return y + m * rm;
  }

  const ModelConfig& cfg_;
  const ParamSource& p_;
  bool cp_;
};

std::vector<int64_t> to_vector(const Tensor& t) {
  auto c = t.contiguous().to(torch::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST_CASE("LRP written out layer by layer equals attnlrp and cp-lrp on one fixture of each norm and activation kind",
          "[attribution][lrp][fixtures]") {
  // RMSNorm + SiLU gate (llama), fused gate/up (phi3), (1+w) RMSNorm + GeGLU tanh + soft-capping
  // + sandwich norms + sliding window (gemma2_sw8), LayerNorm + gelu_new + learned positions +
  // biases (gpt2), LayerNorm + GELU + parallel residual + partial rotary (gpt_neox).
  for (const std::string name : {"llama", "phi3", "gemma2_sw8", "gpt2", "gpt_neox"}) {
    DYNAMIC_SECTION(name) {
      const auto dir = test::shared("fixtures") / name;
      const auto cfg = load_model_config(dir);
      REQUIRE(!cfg.rope_interleaved);  // the written-out rotary is rotate-half
      const auto ck = checkpoint::Checkpoint::open(dir);
      TensorStore store(ck);
      ParamSource params(store, weight_map_for(cfg, store), torch::kFloat64, torch::kCPU);
      auto lm = LanguageModel::load_weights(dir, test::cpu_runtime("float64"));
      test::ReferenceTensors ref(dir / "reference.safetensors");
      const auto prompt = to_vector(ref["input_ids"]), outputs = to_vector(ref["greedy_ids"]);
      std::vector<int64_t> seq = prompt;
      seq.insert(seq.end(), outputs.begin(), outputs.end());
      auto embeds = lm->model().embed(torch::tensor(seq).view({1, -1}))[0].to(torch::kFloat64);
      for (bool cp : {false, true}) {
        INFO(name << (cp ? " cp-lrp" : " attnlrp"));
        ExplicitLrp explicit_lrp(cfg, params, cp);
        GradientRequest req;
        req.prompt = prompt;
        req.outputs = outputs;
        req.method = find_gradient_method(cp ? "cp-lrp" : "attnlrp");
        req.target = &find_target("logit");
        auto ours = attribute_gradients(lm->model(), req);
        for (size_t t = 0; t < outputs.size(); ++t) {
          const auto L = static_cast<int64_t>(prompt.size() + t);
          auto e = embeds.slice(0, 0, L).detach().requires_grad_(true);
          auto logit = explicit_lrp.logits(e)[L - 1][outputs[t]];
          auto g = torch::autograd::grad({logit}, {e})[0];
          auto want = (e.detach() * g).sum(-1);
          auto got = ours.scores[static_cast<int64_t>(t)].slice(0, 0, L);
          const double scale = want.abs().max().item<double>();
          INFO("row " << t << " logit " << logit.item<double>() << " vs " << ours.target_values[t]);
          CHECK(logit.item<double>() == Approx(ours.target_values[t]).epsilon(1e-10));
          // float64 on both sides, the same operations in different orders: rounding ~1e-14 of
          // the row maximum whatever the kernel; a rule applied in the wrong place moves >= 1e-3.
          CHECK((got - want).abs().max().item<double>() <= 1e-9 * scale);
          CHECK(scale > 0);
        }
      }
    }
  }
}
