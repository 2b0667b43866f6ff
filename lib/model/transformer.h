// One configurable decoder-only transformer. A family is a ModelConfig (norm kind, activation,
// positions, biases, residual layout, scalings, soft-capping, sliding windows) plus a weight
// map; there is no per-family model class.
//
// The token-embedding lookup is separate from the body: forward() takes inputs_embeds, so a
// caller can make them a leaf tensor and take gradients with respect to them.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "checkpoint/model_config.h"
#include "model/relevance.h"
#include "model/weights.h"

namespace pizza {

// Keys/values of every layer for the positions seen so far ([B, kv_heads, S, head_dim], keys
// already rotated), and which of those S positions are real tokens (left padding is not).
// A cache from new_cache(batch, capacity) writes new keys and values in place into buffers of
// `capacity` positions (keys/values are then views of their first S positions); without one,
// or once full, each step appends by concatenation (a copy of the whole cache).
struct KVCache {
  std::vector<torch::Tensor> keys, values;
  torch::Tensor key_mask;  // [B, S] bool
  // [B, kv_heads, capacity, head_dim] per layer, or empty.
  std::vector<torch::Tensor> key_store, value_store;
  int64_t length() const { return key_mask.defined() ? key_mask.size(1) : 0; }
  // Keeps only the given batch rows (e.g. to reuse a prefix cache for several perturbations).
  // The result has no preallocated buffers.
  KVCache select(const torch::Tensor& rows) const;
};

struct ForwardOptions {
  // [B, T] int64 position ids; default 0..T-1 after the cache length (per row).
  torch::Tensor positions;
  // [B, T] bool, true = real token. Default all true. Appended to the cache's mask.
  torch::Tensor attention_mask;
  KVCache* cache = nullptr;                    // read and extended when given
  std::vector<torch::Tensor>* hidden_states = nullptr;  // L+1 entries, as transformers returns
  // Only compute logits for the last position (generation).
  bool last_only = false;
  // Only compute logits at one position per row ([B] int64: logits come back [B,1,V]) or at K
  // positions per row ([B, K]: [B,K,V]). Saves the vocabulary projection (and its backward)
  // at every other position.
  torch::Tensor logit_positions;
  // Stop before the vocabulary projection: return the final (normed) hidden states that
  // project() turns into logits.
  bool final_hidden_only = false;
  // The backward rules the pass records (forward values are the same under every rule).
  Relevance relevance = Relevance::gradient;
};

class Linear : public torch::nn::Module {
 public:
  Linear(torch::Tensor weight, torch::Tensor bias);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight, bias;
};

class Norm : public torch::nn::Module {
 public:
  Norm(NormKind kind, double eps, torch::Tensor weight, torch::Tensor bias);
  torch::Tensor forward(const torch::Tensor& x, Relevance rules = Relevance::gradient) const;

 private:
  NormKind kind_;
  double eps_;
  torch::Tensor weight_, bias_;
};

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& cfg, int64_t layer, const ParamSource& params);
  // x [B,T,D]; cos/sin [B,T,rot]; mask [B,1,T,S] additive. Appends to cache layer when given.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache, Relevance rules) const;

 private:
  const ModelConfig& cfg_;
  int64_t layer_;
  std::shared_ptr<Linear> qkv_, o_;
  std::shared_ptr<Norm> q_norm_, k_norm_;  // OLMo2
};

// down(act(gate x) * up x), or down(act(up x)) for a plain MLP. Dense layers, MoE experts and
// the Qwen2-MoE shared expert are all this module under different canonical prefixes.
class MLP : public torch::nn::Module {
 public:
  MLP(const ModelConfig& cfg, int64_t layer, const ParamSource& params);
  // prefix: canonical module prefix ("layers.3.mlp"); intermediate: its hidden width.
  MLP(const ModelConfig& cfg, const std::string& prefix, int64_t intermediate, const ParamSource& params);
  torch::Tensor forward(const torch::Tensor& x, Relevance rules) const;

 private:
  Activation act_;
  bool gated_ = false;
  std::shared_ptr<Linear> up_, down_;  // up_ is [gate; up] stacked when gated
};

// Sparse mixture of experts (Mixtral, Qwen2-MoE): softmax router in float32, top-k experts per
// token, weights optionally renormalised over the k, plus an optional sigmoid-gated shared expert.
class SparseMoE : public torch::nn::Module {
 public:
  SparseMoE(const ModelConfig& cfg, int64_t layer, const ParamSource& params);
  // The router (softmax, top-k and the shared expert's sigmoid gate) keeps its ordinary backward
  // under relevance rules; the experts take them.
  torch::Tensor forward(const torch::Tensor& x, Relevance rules) const;

 private:
  int64_t top_k_;
  bool renormalize_;
  std::shared_ptr<Linear> router_, shared_gate_;
  std::vector<std::shared_ptr<MLP>> experts_;
  std::shared_ptr<MLP> shared_;
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const ModelConfig& cfg, int64_t layer, const ParamSource& params);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache, Relevance rules) const;

 private:
  torch::Tensor feed_forward(const torch::Tensor& x, Relevance rules) const {
    return moe_ ? moe_->forward(x, rules) : mlp_->forward(x, rules);
  }

  const ModelConfig& cfg_;
  // Any of the norms may be absent: pre-norms (OLMo2 has none; Phi-style parallel blocks share
  // attn_norm), post-norms (Gemma2/OLMo2 only).
  std::shared_ptr<Norm> attn_norm_, mlp_norm_, attn_out_norm_, mlp_out_norm_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<MLP> mlp_;        // dense layers
  std::shared_ptr<SparseMoE> moe_;  // expert layers
};

class Transformer : public torch::nn::Module {
 public:
  Transformer(ModelConfig cfg, const ParamSource& params, torch::Dtype dtype, torch::Device device);

  // ids [B,T] -> inputs_embeds [B,T,D] (the raw table rows, before any family scaling).
  torch::Tensor embed(const torch::Tensor& ids) const;
  // inputs_embeds [B,T,D] -> logits [B,T,V] (or [B,1,V] with last_only).
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const ForwardOptions& opts = {}) const;

  // Final hidden states -> logits (lm_head, logit scaling and soft-capping).
  torch::Tensor project(const torch::Tensor& h) const;

  const ModelConfig& config() const { return cfg_; }
  torch::Dtype dtype() const { return dtype_; }
  torch::Device device() const { return device_; }
  const torch::Tensor& embedding_table() const { return embed_; }
  // An empty cache; with capacity > 0, buffers for `batch` rows and `capacity` positions are
  // allocated now, so decoding writes each step's keys and values in place.
  KVCache new_cache(int64_t batch = 0, int64_t capacity = 0) const;

 private:
  std::pair<torch::Tensor, torch::Tensor> rope(const torch::Tensor& positions) const;

  ModelConfig cfg_;
  torch::Dtype dtype_;
  torch::Device device_;
  torch::Tensor embed_, pos_embed_, inv_freq_;
  std::vector<std::shared_ptr<DecoderLayer>> layers_;
  std::shared_ptr<Norm> final_norm_;
  std::shared_ptr<Linear> lm_head_;
};

// Inverse RoPE frequencies for a config (with linear / llama3 scaling), float64 on CPU.
torch::Tensor rope_inv_freq(const ModelConfig& cfg);

}  // namespace pizza
