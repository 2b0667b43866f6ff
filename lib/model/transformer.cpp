#include "model/transformer.h"

#include <cmath>
#include <map>
#include <numbers>

#include "model/attention_core.h"
#include "model/grad_ops.h"
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

// Projections of the same input as one: the parts' weights (and biases, when they have them)
// stacked by output rows, so its output is the parts' outputs side by side. The checkpoint
// tensors are converted straight into the stacked weight (ParamSource::stacked).
std::shared_ptr<Linear> make_stacked_linear(const ParamSource& p, const std::vector<std::pair<std::string, int64_t>>& parts,
                                            int64_t in, bool bias, const ModelConfig& cfg) {
  std::vector<std::string> weights, biases;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, out] : parts) {
    weights.push_back(name + ".weight");
    shapes[weights.back()] = {out, in};
    if (bias) {
      biases.push_back(name + ".bias");
      shapes[biases.back()] = {out};
    }
  }
  auto check = [&](const torch::Tensor& t, const std::string& name) { expect_shape(t, shapes.at(name), name, cfg); };
  return std::make_shared<Linear>(p.stacked(weights, check), bias ? p.stacked(biases, check) : torch::Tensor());
}

// A norm of the config's kind over `dim` features (hidden_size unless given).
std::shared_ptr<Norm> make_norm(const ParamSource& p, const std::string& name, const ModelConfig& cfg,
                                int64_t dim = 0, std::optional<NormKind> kind = std::nullopt) {
  if (dim == 0) dim = cfg.hidden_size;
  const auto k = kind.value_or(cfg.norm);
  const bool layer = k == NormKind::layer;
  torch::Tensor w, b;
  if (cfg.norm_weight || !layer) {
    w = p.get(name + ".weight");
    expect_shape(w, {dim}, name + ".weight", cfg);
  }
  if (cfg.norm_bias && layer) {
    b = p.get(name + ".bias");
    expect_shape(b, {dim}, name + ".bias", cfg);
  }
  return std::make_shared<Norm>(k, cfg.norm_eps, w, b);
}

// RoPE on the first cos.size(-1) dims of x [B,H,T,hd]; the rest pass through (partial rotary).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                         bool interleaved) {
  const auto rot = cos.size(-1);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  if (rot == x.size(-1)) return rotary(x, c, s, interleaved);
  return torch::cat({rotary(x.slice(-1, 0, rot), c, s, interleaved), x.slice(-1, rot)}, -1);
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

torch::Tensor Linear::forward(const torch::Tensor& x) const {
  // One row (a decode step) outside autograd: a BLAS matrix-vector product streams the weight
  // once, where OpenBLAS's GEMM would first pack (copy) all of it for a single output column,
  // which made decoding ~2.5x slower than the memory bound. Float32/64 only: those are the
  // dtypes ATen hands to BLAS.
  const bool blas_dtype = x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64;
  if (x.dim() > 0 && x.numel() == x.size(-1) && blas_dtype && x.device().is_cpu() &&
      !(torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()))) {
    auto shape = x.sizes().vec();
    shape.back() = weight.size(0);
    auto row = x.reshape({-1});
    return (bias.defined() ? torch::addmv(bias, weight, row) : torch::mv(weight, row)).view(shape);
  }
  return F::linear(x, weight, bias);
}

Norm::Norm(NormKind kind, double eps, torch::Tensor weight, torch::Tensor bias)
    : kind_(kind), eps_(eps), weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_.defined()) register_parameter("weight", weight_, false);
  if (bias_.defined()) register_parameter("bias", bias_, false);
}

torch::Tensor Norm::forward(const torch::Tensor& x, Relevance rules) const {
  if (kind_ == NormKind::layer) {
    // weight/bias may be undefined: LayerNorm without bias (Cohere) or without any (OLMo).
    return layer_norm(x, weight_, bias_, eps_, rules);
  }
  return rms_norm(x, weight_, eps_, kind_ == NormKind::rms_one_plus, rules);
}

Attention::Attention(const ModelConfig& cfg, int64_t layer, const ParamSource& p) : cfg_(cfg), layer_(layer) {
  const auto D = cfg.hidden_size, hd = cfg.head_dim;
  // q, k and v stacked into one projection: one matrix product forward and, more importantly,
  // one backward product dX = [dQ dK dV] W_qkv instead of three (two of them thin) and two adds.
  qkv_ = make_stacked_linear(p,
                             {{layer_name(layer, "attn.q"), cfg.num_heads * hd},
                              {layer_name(layer, "attn.k"), cfg.num_kv_heads * hd},
                              {layer_name(layer, "attn.v"), cfg.num_kv_heads * hd}},
                             D, cfg.attention_bias, cfg);
  o_ = make_linear(p, layer_name(layer, "attn.o"), D, cfg.num_heads * hd, cfg.attention_out_bias, cfg);
  register_module("qkv", qkv_);
  register_module("o", o_);
  if (cfg.qk_norm) {  // OLMo2: RMSNorm over the whole projection, before heads are split
    q_norm_ = make_norm(p, layer_name(layer, "attn.q_norm"), cfg, cfg.num_heads * hd, NormKind::rms);
    k_norm_ = make_norm(p, layer_name(layer, "attn.k_norm"), cfg, cfg.num_kv_heads * hd, NormKind::rms);
    register_module("q_norm", q_norm_);
    register_module("k_norm", k_norm_);
  }
}

torch::Tensor Attention::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 const torch::Tensor& mask, KVCache* cache, Relevance rules) const {
  const auto B = x.size(0), T = x.size(1), H = cfg_.num_heads, KVH = cfg_.num_kv_heads, hd = cfg_.head_dim;
  auto qkv = qkv_->forward(x).split({H * hd, KVH * hd, KVH * hd}, -1);
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  if (cfg_.clip_qkv) {
    const double c = *cfg_.clip_qkv;
    q = q.clamp(-c, c);
    k = k.clamp(-c, c);
    v = v.clamp(-c, c);
  }
  if (q_norm_) {
    q = q_norm_->forward(q, rules);
    k = k_norm_->forward(k, rules);
  }
  q = q.view({B, T, H, hd}).transpose(1, 2);
  k = k.view({B, T, KVH, hd}).transpose(1, 2);
  v = v.view({B, T, KVH, hd}).transpose(1, 2);
  if (cos.defined()) {
    q = apply_rope(q, cos, sin, cfg_.rope_interleaved);
    k = apply_rope(k, cos, sin, cfg_.rope_interleaved);
  }
  if (cache) {
    const auto l = static_cast<size_t>(layer_);
    auto& ck = cache->keys[l];
    auto& cv = cache->values[l];
    const int64_t past = ck.defined() ? ck.size(2) : 0;
    const bool in_place = l < cache->key_store.size() && cache->key_store[l].defined() &&
                          cache->key_store[l].size(0) == B && past + T <= cache->key_store[l].size(2);
    if (in_place) {
      auto &ks = cache->key_store[l], &vs = cache->value_store[l];
      ks.narrow(2, past, T).copy_(k);
      vs.narrow(2, past, T).copy_(v);
      k = ks.narrow(2, 0, past + T);
      v = vs.narrow(2, 0, past + T);
    } else {
      if (l < cache->key_store.size()) cache->key_store[l] = cache->value_store[l] = torch::Tensor();  // outgrown
      if (ck.defined()) {
        k = torch::cat({ck, k}, 2);
        v = torch::cat({cv, v}, 2);
      }
    }
    ck = k;
    cv = v;
  }
  const double scale = cfg_.attention_scale.value_or(1.0 / std::sqrt(static_cast<double>(hd)));
  auto out = attention_core(q, k, v, mask, scale, cfg_.attn_logit_softcap, rules).transpose(1, 2).reshape({B, T, H * hd});
  return o_->forward(out);
}

MLP::MLP(const ModelConfig& cfg, int64_t layer, const ParamSource& p)
    : MLP(cfg, layer_name(layer, "mlp"), cfg.intermediate_size, p) {}

MLP::MLP(const ModelConfig& cfg, const std::string& prefix, int64_t I, const ParamSource& p) : act_(cfg.activation) {
  const auto D = cfg.hidden_size;
  if (cfg.gated_mlp) {
    // gate and up stacked into one projection (as q/k/v): one product each way, and the
    // gated activation's backward writes both halves' gradients in one pass.
    up_ = make_stacked_linear(p, {{prefix + ".gate", I}, {prefix + ".up", I}}, D, cfg.mlp_bias, cfg);
    gated_ = true;
  } else {
    up_ = make_linear(p, prefix + ".up", I, D, cfg.mlp_bias, cfg);
  }
  down_ = make_linear(p, prefix + ".down", D, I, cfg.mlp_bias, cfg);
  register_module(gated_ ? "gate_up" : "up", up_);
  register_module("down", down_);
}

torch::Tensor MLP::forward(const torch::Tensor& x, Relevance rules) const {
  if (gated_) return down_->forward(gated_activation(up_->forward(x), act_, rules));
  return down_->forward(activation(act_, up_->forward(x), rules));
}

SparseMoE::SparseMoE(const ModelConfig& cfg, int64_t layer, const ParamSource& p)
    : top_k_(cfg.experts_per_token), renormalize_(cfg.renormalize_top_k) {
  const auto D = cfg.hidden_size;
  router_ = make_linear(p, layer_name(layer, "moe.router"), cfg.num_experts, D, false, cfg);
  register_module("router", router_);
  for (int64_t e = 0; e < cfg.num_experts; ++e) {
    experts_.push_back(std::make_shared<MLP>(cfg, layer_name(layer, "moe.experts." + std::to_string(e)),
                                             cfg.expert_intermediate_size, p));
    register_module("expert" + std::to_string(e), experts_.back());
  }
  if (cfg.shared_expert_intermediate_size > 0) {
    shared_ = std::make_shared<MLP>(cfg, layer_name(layer, "moe.shared"), cfg.shared_expert_intermediate_size, p);
    shared_gate_ = make_linear(p, layer_name(layer, "moe.shared_gate"), 1, D, false, cfg);
    register_module("shared", shared_);
    register_module("shared_gate", shared_gate_);
  }
}

torch::Tensor SparseMoE::forward(const torch::Tensor& x, Relevance rules) const {
  const auto shape = x.sizes().vec();
  auto flat = x.reshape({-1, x.size(-1)});  // [N, D]
  auto probs = torch::softmax(router_->forward(flat), -1, torch::kFloat32);
  auto [weights, chosen] = probs.topk(top_k_, -1);  // [N, k]
  if (renormalize_) weights = weights / weights.sum(-1, true);
  weights = weights.to(x.scalar_type());
  // Each expert runs only on the tokens routed to it; the routing weights stay differentiable
  // (gradients with respect to inputs_embeds flow through them as in transformers).
  auto out = torch::zeros_like(flat);
  for (size_t e = 0; e < experts_.size(); ++e) {
    auto hit = chosen.eq(static_cast<int64_t>(e));  // [N, k]; an expert appears at most once per row
    auto rows = hit.any(-1).nonzero().squeeze(-1);
    if (rows.numel() == 0) continue;
    auto w = (weights * hit.to(weights.scalar_type())).sum(-1).index_select(0, rows).unsqueeze(-1);
    out = out.index_add(0, rows, experts_[e]->forward(flat.index_select(0, rows), rules) * w);
  }
  if (shared_) out = out + torch::sigmoid(shared_gate_->forward(flat)) * shared_->forward(flat, rules);
  return out.view(shape);
}

DecoderLayer::DecoderLayer(const ModelConfig& cfg, int64_t layer, const ParamSource& p) : cfg_(cfg) {
  auto add_norm = [&](std::shared_ptr<Norm>& slot, const std::string& name) {
    slot = make_norm(p, layer_name(layer, name), cfg);
    register_module(name, slot);
  };
  if (cfg.pre_norm) {
    add_norm(attn_norm_, "attn_norm");
    if (!(cfg.parallel_residual && cfg.parallel_shared_norm)) add_norm(mlp_norm_, "mlp_norm");
  }
  if (cfg.sandwich_norm) {
    add_norm(attn_out_norm_, "attn_out_norm");
    add_norm(mlp_out_norm_, "mlp_out_norm");
  }
  attn_ = std::make_shared<Attention>(cfg, layer, p);
  register_module("attn", attn_);
  if (cfg.layer_uses_experts(layer)) {
    moe_ = std::make_shared<SparseMoE>(cfg, layer, p);
    register_module("moe", moe_);
  } else {
    mlp_ = std::make_shared<MLP>(cfg, layer, p);
    register_module("mlp", mlp_);
  }
}

torch::Tensor DecoderLayer::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                    const torch::Tensor& mask, KVCache* cache, Relevance rules) const {
  const double rm = cfg_.residual_multiplier;
  auto h = attn_norm_ ? attn_norm_->forward(x, rules) : x;
  auto a = attn_->forward(h, cos, sin, mask, cache, rules);
  if (attn_out_norm_) a = attn_out_norm_->forward(a, rules);
  if (cfg_.parallel_residual) {
    // GPT-NeoX uses a second norm for the MLP branch; Phi/Cohere/StableLM feed both branches h.
    auto m = feed_forward(mlp_norm_ ? mlp_norm_->forward(x, rules) : h, rules);
    return x + a + m;
  }
  auto y = rm == 1.0 ? x + a : x + a * rm;
  auto m = feed_forward(mlp_norm_ ? mlp_norm_->forward(y, rules) : y, rules);
  if (mlp_out_norm_) m = mlp_out_norm_->forward(m, rules);
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

KVCache Transformer::new_cache(int64_t batch, int64_t capacity) const {
  KVCache c;
  const auto L = static_cast<size_t>(cfg_.num_layers);
  c.keys.resize(L);
  c.values.resize(L);
  if (capacity > 0 && batch > 0) {
    auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
    for (size_t i = 0; i < L; ++i) {
      c.key_store.push_back(torch::empty({batch, cfg_.num_kv_heads, capacity, cfg_.head_dim}, opts));
      c.value_store.push_back(torch::empty({batch, cfg_.num_kv_heads, capacity, cfg_.head_dim}, opts));
    }
  }
  return c;
}

torch::Tensor Transformer::embed(const torch::Tensor& ids) const {
  return F::embedding(ids.to(device_), embed_);
}

std::pair<torch::Tensor, torch::Tensor> Transformer::rope(const torch::Tensor& positions) const {
  auto angle_dtype = dtype_ == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto freqs = positions.to(angle_dtype).unsqueeze(-1) * inv_freq_.to(angle_dtype);  // [B,T,rot/2]
  // Rotate-half pairs dim i with i + rot/2; interleaved pairs 2i with 2i+1.
  auto emb = cfg_.rope_interleaved ? torch::stack({freqs, freqs}, -1).flatten(-2) : torch::cat({freqs, freqs}, -1);
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
  // The most negative value of the compute dtype (transformers' finfo(dtype).min): float's
  // lowest overflows bfloat16.
  const double neg = dtype_ == torch::kBFloat16 ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                     : dtype_ == torch::kHalf   ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                                                : static_cast<double>(std::numeric_limits<float>::lowest());
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
    h = layers_[i]->forward(h, cos, sin, sw ? window_mask : full_mask, opts.cache, opts.relevance);
  }
  h = final_norm_->forward(h, opts.relevance);
  if (opts.hidden_states) opts.hidden_states->push_back(h);
  if (opts.last_only) h = h.slice(1, T - 1, T);
  if (opts.logit_positions.defined()) {
    auto p = opts.logit_positions.to(dev);
    if (p.dim() == 1) p = p.view({B, 1});
    h = select_rows(h, p);  // [B, K, D]
  }
  if (opts.final_hidden_only) return h;
  return project(h);
}

torch::Tensor Transformer::project(const torch::Tensor& h) const {
  auto logits = lm_head_->forward(h);
  if (cfg_.logits_divisor != 1.0) logits = logits / cfg_.logits_divisor;
  if (cfg_.logits_multiplier != 1.0) logits = logits * cfg_.logits_multiplier;
  if (cfg_.final_logit_softcap) {
    const double cap = *cfg_.final_logit_softcap;
    logits = torch::tanh(logits / cap) * cap;
  }
  return logits;
}

}  // namespace pizza
