#include "model/transformer.h"

#include <cmath>
#include <numbers>

#include "util/error.h"

namespace pizza {

namespace F = torch::nn::functional;

namespace {

std::string layer_name(int64_t layer, const std::string& rest) {
  return "layers." + std::to_string(layer) + "." + rest;
}

void expect_shape(const torch::Tensor& t, std::vector<int64_t> shape, const std::string& name,
                  const ModelConfig& cfg) {
  if (t.sizes() != torch::IntArrayRef(shape)) {
    std::ostringstream ss;
    ss << "weight '" << name << "' has shape " << t.sizes() << " but " << cfg.source.string() << " implies "
       << torch::IntArrayRef(shape);
    throw InputError(ss.str());
  }
}

std::shared_ptr<Linear> make_linear(const ParamSource& p, const std::string& name, int64_t out, int64_t in,
                                    bool bias, const ModelConfig& cfg) {
  auto w = p.get(name + ".weight");
  expect_shape(w, {out, in}, name + ".weight", cfg);
  torch::Tensor b;
  if (bias) {
    b = p.get(name + ".bias");
    expect_shape(b, {out}, name + ".bias", cfg);
  }
  return std::make_shared<Linear>(w, b);
}

std::shared_ptr<Norm> make_norm(const ParamSource& p, const std::string& name, const ModelConfig& cfg) {
  auto w = p.get(name + ".weight");
  expect_shape(w, {cfg.hidden_size}, name + ".weight", cfg);
  torch::Tensor b = cfg.norm_bias ? p.get(name + ".bias") : torch::Tensor();
  return std::make_shared<Norm>(cfg.norm, cfg.norm_eps, w, b);
}

torch::Tensor activate(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::silu: return torch::silu(x);
    case Activation::gelu_exact: return torch::gelu(x);
    case Activation::gelu_tanh: return torch::gelu(x, "tanh");
    case Activation::relu: return torch::relu(x);
  }
  return x;
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

// Rotate-half RoPE on the first cos.size(-1) dims of x [B,H,T,hd]; the rest pass through.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto rot = cos.size(-1);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  if (rot == x.size(-1)) return x * c + rotate_half(x) * s;
  auto xr = x.slice(-1, 0, rot), xp = x.slice(-1, rot);
  return torch::cat({xr * c + rotate_half(xr) * s, xp}, -1);
}

}  // namespace

KVCache KVCache::select(const torch::Tensor& rows) const {
  KVCache out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.keys.push_back(keys[i].index_select(0, rows));
    out.values.push_back(values[i].index_select(0, rows));
  }
  if (key_mask.defined()) out.key_mask = key_mask.index_select(0, rows);
  return out;
}

Linear::Linear(torch::Tensor w, torch::Tensor b) : weight(std::move(w)), bias(std::move(b)) {
  register_parameter("weight", weight, false);
  if (bias.defined()) register_parameter("bias", bias, false);
}

torch::Tensor Linear::forward(const torch::Tensor& x) const { return F::linear(x, weight, bias); }

Norm::Norm(NormKind kind, double eps, torch::Tensor weight, torch::Tensor bias)
    : kind_(kind), eps_(eps), weight_(std::move(weight)), bias_(std::move(bias)) {
  register_parameter("weight", weight_, false);
  if (bias_.defined()) register_parameter("bias", bias_, false);
}

torch::Tensor Norm::forward(const torch::Tensor& x) const {
  if (kind_ == NormKind::layer) {
    return torch::layer_norm(x, {x.size(-1)}, weight_, bias_, eps_);
  }
  // RMSNorm in at least float32, as transformers does, then back to the compute dtype.
  auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto h = x.to(compute);
  h = h * torch::rsqrt(h.pow(2).mean(-1, true) + eps_);
  if (kind_ == NormKind::rms_one_plus) return (h * (1.0 + weight_.to(compute))).to(x.scalar_type());
  return weight_ * h.to(x.scalar_type());
}

Attention::Attention(const ModelConfig& cfg, int64_t layer, const ParamSource& p) : cfg_(cfg), layer_(layer) {
  const auto D = cfg.hidden_size, hd = cfg.head_dim;
  q_ = make_linear(p, layer_name(layer, "attn.q"), cfg.num_heads * hd, D, cfg.attention_bias, cfg);
  k_ = make_linear(p, layer_name(layer, "attn.k"), cfg.num_kv_heads * hd, D, cfg.attention_bias, cfg);
  v_ = make_linear(p, layer_name(layer, "attn.v"), cfg.num_kv_heads * hd, D, cfg.attention_bias, cfg);
  o_ = make_linear(p, layer_name(layer, "attn.o"), D, cfg.num_heads * hd, cfg.attention_out_bias, cfg);
  register_module("q", q_);
  register_module("k", k_);
  register_module("v", v_);
  register_module("o", o_);
}

torch::Tensor Attention::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 const torch::Tensor& mask, KVCache* cache) const {
  const auto B = x.size(0), T = x.size(1), H = cfg_.num_heads, KVH = cfg_.num_kv_heads, hd = cfg_.head_dim;
  auto q = q_->forward(x).view({B, T, H, hd}).transpose(1, 2);
  auto k = k_->forward(x).view({B, T, KVH, hd}).transpose(1, 2);
  auto v = v_->forward(x).view({B, T, KVH, hd}).transpose(1, 2);
  if (cos.defined()) {
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
  }
  if (cache) {
    auto& ck = cache->keys[static_cast<size_t>(layer_)];
    auto& cv = cache->values[static_cast<size_t>(layer_)];
    if (ck.defined()) {
      k = torch::cat({ck, k}, 2);
      v = torch::cat({cv, v}, 2);
    }
    ck = k;
    cv = v;
  }
  if (KVH != H) {  // grouped-query attention: each kv head serves H/KVH query heads
    const auto S = k.size(2), rep = H / KVH;
    k = k.unsqueeze(2).expand({B, KVH, rep, S, hd}).reshape({B, H, S, hd});
    v = v.unsqueeze(2).expand({B, KVH, rep, S, hd}).reshape({B, H, S, hd});
  }
  const double scale = cfg_.attention_scale.value_or(1.0 / std::sqrt(static_cast<double>(hd)));
  auto scores = torch::matmul(q, k.transpose(2, 3)) * scale;
  if (cfg_.attn_logit_softcap) {
    const double cap = *cfg_.attn_logit_softcap;
    scores = torch::tanh(scores / cap) * cap;
  }
  scores = scores + mask;
  // Softmax in float32 at least, as transformers' eager attention does.
  auto probs = torch::softmax(scores, -1, scores.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32)
                   .to(q.scalar_type());
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, H * hd});
  return o_->forward(out);
}

MLP::MLP(const ModelConfig& cfg, int64_t layer, const ParamSource& p) : act_(cfg.activation) {
  const auto D = cfg.hidden_size, I = cfg.intermediate_size;
  if (cfg.gated_mlp) {
    gate_ = make_linear(p, layer_name(layer, "mlp.gate"), I, D, cfg.mlp_bias, cfg);
    register_module("gate", gate_);
  }
  up_ = make_linear(p, layer_name(layer, "mlp.up"), I, D, cfg.mlp_bias, cfg);
  down_ = make_linear(p, layer_name(layer, "mlp.down"), D, I, cfg.mlp_bias, cfg);
  register_module("up", up_);
  register_module("down", down_);
}

torch::Tensor MLP::forward(const torch::Tensor& x) const {
  if (gate_) return down_->forward(activate(act_, gate_->forward(x)) * up_->forward(x));
  return down_->forward(activate(act_, up_->forward(x)));
}

DecoderLayer::DecoderLayer(const ModelConfig& cfg, int64_t layer, const ParamSource& p) : cfg_(cfg) {
  attn_norm_ = make_norm(p, layer_name(layer, "attn_norm"), cfg);
  register_module("attn_norm", attn_norm_);
  if (p.has(layer_name(layer, "mlp_norm.weight"))) {
    mlp_norm_ = make_norm(p, layer_name(layer, "mlp_norm"), cfg);
    register_module("mlp_norm", mlp_norm_);
  }
  if (cfg.sandwich_norm) {
    attn_out_norm_ = make_norm(p, layer_name(layer, "attn_out_norm"), cfg);
    mlp_out_norm_ = make_norm(p, layer_name(layer, "mlp_out_norm"), cfg);
    register_module("attn_out_norm", attn_out_norm_);
    register_module("mlp_out_norm", mlp_out_norm_);
  }
  attn_ = std::make_shared<Attention>(cfg, layer, p);
  mlp_ = std::make_shared<MLP>(cfg, layer, p);
  register_module("attn", attn_);
  register_module("mlp", mlp_);
}

torch::Tensor DecoderLayer::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                    const torch::Tensor& mask, KVCache* cache) const {
  const double rm = cfg_.residual_multiplier;
  auto h = attn_norm_->forward(x);
  auto a = attn_->forward(h, cos, sin, mask, cache);
  if (cfg_.parallel_residual) {
    // GPT-NeoX uses a second norm for the MLP branch; Phi feeds both branches the same one.
    auto m = mlp_->forward(mlp_norm_ ? mlp_norm_->forward(x) : h);
    return x + a + m;
  }
  if (attn_out_norm_) a = attn_out_norm_->forward(a);
  auto y = rm == 1.0 ? x + a : x + a * rm;
  auto m = mlp_->forward(mlp_norm_->forward(y));
  if (mlp_out_norm_) m = mlp_out_norm_->forward(m);
  return rm == 1.0 ? y + m : y + m * rm;
}

torch::Tensor rope_inv_freq(const ModelConfig& cfg) {
  const auto dim = cfg.rotary_dim();
  auto inv = 1.0 / torch::pow(cfg.rope_theta, torch::arange(0, dim, 2, torch::kFloat64) / static_cast<double>(dim));
  if (cfg.rope_scaling == RopeScaling::linear) return inv / cfg.rope_factor;
  if (cfg.rope_scaling == RopeScaling::llama3) {
    // Llama 3.1: long wavelengths are divided by the factor, short ones kept, and the band
    // between is interpolated smoothly.
    const double factor = cfg.rope_factor, lo = cfg.rope_low_freq_factor, hi = cfg.rope_high_freq_factor;
    const double old_len = static_cast<double>(cfg.rope_original_max_positions);
    const double low_wavelen = old_len / lo, high_wavelen = old_len / hi;
    auto wavelen = 2.0 * std::numbers::pi / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / factor, inv);
    auto smooth = (old_len / wavelen - lo) / (hi - lo);
    auto smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
    return torch::where(medium, smoothed, scaled);
  }
  return inv;
}

Transformer::Transformer(ModelConfig cfg, const ParamSource& p, torch::Dtype dtype, torch::Device device)
    : cfg_(std::move(cfg)), dtype_(dtype), device_(device) {
  embed_ = p.get("embed.weight");
  expect_shape(embed_, {cfg_.vocab_size, cfg_.hidden_size}, "embed.weight", cfg_);
  register_parameter("embed", embed_, false);
  if (cfg_.positions == PositionKind::learned) {
    pos_embed_ = p.get("pos_embed.weight");
    expect_shape(pos_embed_, {cfg_.max_position_embeddings, cfg_.hidden_size}, "pos_embed.weight", cfg_);
    register_parameter("pos_embed", pos_embed_, false);
  } else {
    // Frequencies in float64, applied in the compute dtype (or float32 when lower).
    inv_freq_ = rope_inv_freq(cfg_).to(device_);
  }
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    layers_.push_back(std::make_shared<DecoderLayer>(cfg_, i, p));
    register_module("layer" + std::to_string(i), layers_.back());
  }
  final_norm_ = make_norm(p, "final_norm", cfg_);
  register_module("final_norm", final_norm_);
  lm_head_ = make_linear(p, "lm_head", cfg_.vocab_size, cfg_.hidden_size, cfg_.lm_head_bias, cfg_);
  register_module("lm_head", lm_head_);
}

KVCache Transformer::new_cache() const {
  KVCache c;
  c.keys.resize(static_cast<size_t>(cfg_.num_layers));
  c.values.resize(static_cast<size_t>(cfg_.num_layers));
  return c;
}

torch::Tensor Transformer::embed(const torch::Tensor& ids) const {
  return F::embedding(ids.to(device_), embed_);
}

std::pair<torch::Tensor, torch::Tensor> Transformer::rope(const torch::Tensor& positions) const {
  auto angle_dtype = dtype_ == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto freqs = positions.to(angle_dtype).unsqueeze(-1) * inv_freq_.to(angle_dtype);  // [B,T,rot/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype_), emb.sin().to(dtype_)};
}

torch::Tensor Transformer::forward(const torch::Tensor& inputs_embeds, const ForwardOptions& opts) const {
  const auto B = inputs_embeds.size(0), T = inputs_embeds.size(1);
  const int64_t past = opts.cache ? opts.cache->length() : 0;
  const auto dev = inputs_embeds.device();

  auto mask_new = opts.attention_mask.defined() ? opts.attention_mask.to(dev, torch::kBool)
                                                : torch::ones({B, T}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  torch::Tensor key_mask = mask_new;
  if (opts.cache) {
    if (opts.cache->key_mask.defined()) key_mask = torch::cat({opts.cache->key_mask, mask_new}, 1);
    opts.cache->key_mask = key_mask;
  }
  const auto S = key_mask.size(1);

  torch::Tensor positions = opts.positions;
  if (!positions.defined()) {
    // Each row counts only its real tokens, so a left-padded row sees the same positions as
    // the row run alone.
    auto cum = key_mask.to(torch::kLong).cumsum(1) - 1;
    positions = cum.slice(1, past, S).clamp_min(0);
  }
  positions = positions.to(dev);

  // Additive mask [B,1,T,S]: causal, key padding, and (per layer) sliding window.
  auto qi = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(dev)).view({T, 1});
  auto kj = torch::arange(0, S, torch::TensorOptions().dtype(torch::kLong).device(dev)).view({1, S});
  auto allowed = (kj <= qi).unsqueeze(0) & key_mask.view({B, 1, S});  // [B,T,S]
  const double neg = std::numeric_limits<float>::lowest();
  auto to_additive = [&](const torch::Tensor& ok) {
    return torch::zeros(ok.sizes(), torch::TensorOptions().dtype(dtype_).device(dev))
        .masked_fill(ok.logical_not(), neg)
        .unsqueeze(1);
  };
  auto full_mask = to_additive(allowed);
  torch::Tensor window_mask;
  if (cfg_.sliding_window) {
    auto in_window = ((qi - kj) < *cfg_.sliding_window).unsqueeze(0);
    window_mask = to_additive(allowed & in_window);
  }

  torch::Tensor cos, sin;
  if (cfg_.positions == PositionKind::rope) std::tie(cos, sin) = rope(positions);

  auto h = inputs_embeds.to(dtype_);
  if (cfg_.embedding_scale != 1.0) {
    // transformers multiplies by the scale rounded to the compute dtype.
    h = h * torch::tensor(cfg_.embedding_scale, torch::TensorOptions().dtype(dtype_)).to(dev);
  }
  if (cfg_.positions == PositionKind::learned) h = h + F::embedding(positions, pos_embed_);

  for (size_t i = 0; i < layers_.size(); ++i) {
    if (opts.hidden_states) opts.hidden_states->push_back(h);
    const bool sw = cfg_.layer_uses_sliding_window(static_cast<int64_t>(i));
    h = layers_[i]->forward(h, cos, sin, sw ? window_mask : full_mask, opts.cache);
  }
  h = final_norm_->forward(h);
  if (opts.hidden_states) opts.hidden_states->push_back(h);
  if (opts.last_only) h = h.slice(1, T - 1, T);
  auto logits = lm_head_->forward(h);
  if (cfg_.logits_divisor != 1.0) logits = logits / cfg_.logits_divisor;
  if (cfg_.final_logit_softcap) {
    const double cap = *cfg_.final_logit_softcap;
    logits = torch::tanh(logits / cap) * cap;
  }
  return logits;
}

}  // namespace pizza
