// config.json as a typed struct. The decoder is one configurable transformer; a family
// (model_type) is a set of traits below plus a weight-name map (model/weight_map.*). Fields
// absent from config.json take the Hugging Face default for that model_type.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace pizza {

enum class NormKind { rms, rms_one_plus /* (1 + w) scaling, Gemma */, layer };
enum class Activation { silu, gelu_exact, gelu_tanh, relu };
enum class PositionKind { rope, learned };
enum class RopeScaling { none, linear, llama3 };

struct ModelConfig {
  std::string model_type;
  std::filesystem::path source;  // the config.json it came from, for error messages

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;

  // Block traits.
  NormKind norm = NormKind::rms;
  double norm_eps = 1e-6;
  bool norm_bias = false;             // LayerNorm with bias
  Activation activation = Activation::silu;
  bool gated_mlp = true;              // SwiGLU/GeGLU (gate * up) vs plain up -> act -> down
  bool attention_bias = false;        // q/k/v bias
  bool attention_out_bias = false;    // o_proj bias
  bool mlp_bias = false;
  bool norm_weight = true;            // false: non-parametric LayerNorm (OLMo)
  bool parallel_residual = false;     // GPT-NeoX/Phi: x + attn(ln1 x) + mlp(ln2 x)
  bool parallel_shared_norm = false;  // Phi/Cohere/StableLM: both parallel branches read ln1 x
  bool pre_norm = true;               // false: no norm before attention/MLP (OLMo2)
  bool sandwich_norm = false;         // Gemma2/OLMo2: norms on the attention and MLP outputs
  bool qk_norm = false;               // OLMo2: RMSNorm over the whole q and k projections
  std::optional<double> clip_qkv;     // OLMo: clamp q, k, v to [-clip, clip]
  bool tie_word_embeddings = false;
  bool lm_head_bias = false;

  // Positions.
  PositionKind positions = PositionKind::rope;
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;  // fraction of head_dim that is rotated
  bool rope_interleaved = false;       // Cohere: rotates (x0,x1),(x2,x3).. pairs, not halves
  RopeScaling rope_scaling = RopeScaling::none;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_positions = 8192;

  // Scalars some families apply.
  double embedding_scale = 1.0;        // Gemma: sqrt(hidden); Granite: embedding_multiplier
  std::optional<double> attention_scale;  // default 1/sqrt(head_dim)
  double residual_multiplier = 1.0;    // Granite
  double logits_divisor = 1.0;         // Granite logits_scaling
  double logits_multiplier = 1.0;      // Cohere logit_scale
  std::optional<double> attn_logit_softcap;   // Gemma2
  std::optional<double> final_logit_softcap;  // Gemma2

  // Sliding-window attention: window size and which layers use it.
  std::optional<int64_t> sliding_window;
  enum class SlidingLayers { all, even /* Gemma2: layer % 2 == 0 */ } sliding_layers = SlidingLayers::all;

  // Sparse mixture of experts (Mixtral, Qwen2-MoE): a softmax router picks the top-k experts.
  int64_t num_experts = 0;             // 0 = dense MLP everywhere
  int64_t experts_per_token = 0;
  int64_t expert_intermediate_size = 0;
  bool renormalize_top_k = true;       // Mixtral always; Qwen2-MoE when norm_topk_prob
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE: sigmoid-gated shared expert
  int64_t moe_layer_step = 1;          // Qwen2-MoE decoder_sparse_step
  std::vector<int64_t> dense_layers;   // Qwen2-MoE mlp_only_layers

  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;

  int64_t rotary_dim() const { return static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor); }
  bool layer_uses_sliding_window(int64_t layer) const;
  bool layer_uses_experts(int64_t layer) const;
};

// The model_types this build supports, in the order they are listed in errors and docs.
const std::vector<std::string>& supported_model_types();

// Parses <dir>/config.json (and merges eos/bos ids from generation_config.json when present).
// Throws InputError naming the file and field on any missing/invalid value.
ModelConfig load_model_config(const std::filesystem::path& dir);

}  // namespace pizza
