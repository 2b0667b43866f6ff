#include "checkpoint/model_config.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "util/error.h"
#include "util/file.h"

namespace pizza {

namespace {

// Typed access to a config.json object with errors naming the file and field.
class ConfigReader {
 public:
  ConfigReader(std::filesystem::path path, simdjson::dom::object obj) : path_(std::move(path)), obj_(obj) {}

  bool has(std::string_view key) const {
    simdjson::dom::element e;
    return !obj_[key].get(e) && !e.is_null();
  }
  // Present at all, null included (null often means "off" where absence means the default).
  bool present(std::string_view key) const {
    simdjson::dom::element e;
    return !obj_[key].get(e);
  }

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw InputError(path_.string() + ": field '" + std::string(key) + "' " + what);
  }

  int64_t integer(std::string_view key) const {
    simdjson::dom::element e;
    if (obj_[key].get(e) || e.is_null()) fail(key, "is missing");
    int64_t v = 0;
    if (e.get(v)) {
      double d = 0;  // some configs write integers as 64.0
      if (e.get(d) || d != std::floor(d)) fail(key, "must be an integer");
      v = static_cast<int64_t>(d);
    }
    return v;
  }
  int64_t integer(std::string_view key, int64_t def) const { return has(key) ? integer(key) : def; }
  int64_t positive(std::string_view key) const {
    int64_t v = integer(key);
    if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
    return v;
  }
  int64_t positive(std::string_view key, int64_t def) const { return has(key) ? positive(key) : def; }

  double number(std::string_view key) const {
    simdjson::dom::element e;
    if (obj_[key].get(e) || e.is_null()) fail(key, "is missing");
    double d = 0;
    if (e.get(d)) fail(key, "must be a number");
    if (!std::isfinite(d)) fail(key, "must be a finite number");
    return d;
  }
  double number(std::string_view key, double def) const { return has(key) ? number(key) : def; }
  // Epsilons, rope bases and factors, scales that divide: zero or negative ones make every
  // logit NaN (or infinite), so they are refused here, naming the field.
  double positive_number(std::string_view key) const {
    const double d = number(key);
    if (!(d > 0)) fail(key, "must be a positive number, got " + std::to_string(d));
    return d;
  }
  double positive_number(std::string_view key, double def) const { return has(key) ? positive_number(key) : def; }
  // The fraction of each head that is rotated: in (0, 1].
  double fraction(std::string_view key, double def) const {
    const double d = positive_number(key, def);
    if (d > 1) fail(key, "must be at most 1, got " + std::to_string(d));
    return d;
  }
  // Absent: def; null: nullopt.
  std::optional<double> nullable_number(std::string_view key, std::optional<double> def) const {
    if (has(key)) return number(key);
    return present(key) ? std::nullopt : def;
  }

  bool boolean(std::string_view key, bool def) const {
    if (!has(key)) return def;
    bool b = false;
    if (obj_[key].get(b)) fail(key, "must be true or false");
    return b;
  }

  std::string string(std::string_view key, std::string def) const {
    if (!has(key)) return def;
    std::string_view s;
    if (obj_[key].get(s)) fail(key, "must be a string");
    return std::string(s);
  }

  // bos/eos ids: an integer or a list of integers.
  std::vector<int64_t> ids(std::string_view key) const {
    if (!has(key)) return {};
    simdjson::dom::element e = obj_[key];
    std::vector<int64_t> out;
    int64_t v = 0;
    if (!e.get(v)) return {v};
    simdjson::dom::array arr;
    if (e.get(arr)) fail(key, "must be an integer or a list of integers");
    for (auto x : arr) {
      if (x.get(v)) fail(key, "must be an integer or a list of integers");
      out.push_back(v);
    }
    return out;
  }

  std::optional<ConfigReader> object(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    simdjson::dom::object o;
    if (obj_[key].get(o)) fail(key, "must be an object");
    return ConfigReader(path_, o);
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  simdjson::dom::object obj_;
};

Activation parse_activation(const ConfigReader& r, std::string_view key, const std::string& def) {
  static const std::map<std::string, Activation, std::less<>> kActs = {
      {"silu", Activation::silu},           {"swish", Activation::silu},
      {"gelu", Activation::gelu_exact},     {"gelu_new", Activation::gelu_tanh},
      {"gelu_pytorch_tanh", Activation::gelu_tanh}, {"gelu_fast", Activation::gelu_tanh},
      {"relu", Activation::relu},
  };
  auto name = r.string(key, def);
  auto it = kActs.find(name);
  if (it == kActs.end()) r.fail(key, "has unsupported activation '" + name + "'");
  return it->second;
}

// Fields every Llama-like family shares; defaults are each family's transformers defaults.
struct LlamaDefaults {
  int64_t vocab, hidden, intermediate, layers, heads, max_pos;
  double eps;
  bool tie;
  const char* act;
  const char* eps_key = "rms_norm_eps";
  int64_t kv_heads = 0;  // 0: as many as query heads
  double rope_theta = 10000.0;
};

void read_llama_like(const ConfigReader& r, ModelConfig& c, const LlamaDefaults& d) {
  c.vocab_size = r.positive("vocab_size", d.vocab);
  c.hidden_size = r.positive("hidden_size", d.hidden);
  c.intermediate_size = r.positive("intermediate_size", d.intermediate);
  c.num_layers = r.positive("num_hidden_layers", d.layers);
  c.num_heads = r.positive("num_attention_heads", d.heads);
  c.num_kv_heads = r.positive("num_key_value_heads", d.kv_heads > 0 ? d.kv_heads : c.num_heads);
  c.head_dim = r.positive("head_dim", c.hidden_size / c.num_heads);
  c.max_position_embeddings = r.positive("max_position_embeddings", d.max_pos);
  c.norm_eps = r.positive_number(d.eps_key, d.eps);
  c.rope_theta = r.positive_number("rope_theta", d.rope_theta);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", d.tie);
  c.activation = parse_activation(r, "hidden_act", d.act);
  if (auto rs = r.object("rope_scaling")) {
    auto type = rs->string("rope_type", rs->string("type", "default"));
    if (type == "linear") {
      c.rope_scaling = RopeScaling::linear;
      c.rope_factor = rs->positive_number("factor");
    } else if (type == "llama3") {
      c.rope_scaling = RopeScaling::llama3;
      c.rope_factor = rs->positive_number("factor");
      c.rope_low_freq_factor = rs->positive_number("low_freq_factor");
      c.rope_high_freq_factor = rs->positive_number("high_freq_factor");
      c.rope_original_max_positions = rs->positive("original_max_position_embeddings");
    } else if (type != "default") {
      r.fail("rope_scaling", "has unsupported rope_type '" + type + "' (supported: linear, llama3)");
    }
  }
}

// A family option pizza does not implement: fail loudly rather than compute something else.
void reject_if_true(const ConfigReader& r, std::string_view key) {
  if (r.boolean(key, false)) r.fail(key, "= true is not supported");
}

// Mistral-style window on every layer: absent = the family default, null = no window.
void read_sliding_window(const ConfigReader& r, ModelConfig& c, std::optional<int64_t> def) {
  if (r.has("sliding_window")) c.sliding_window = r.positive("sliding_window");
  else if (!r.present("sliding_window")) c.sliding_window = def;
}

// Qwen2 applies its window only when use_sliding_window is set, and then only from layer
// max_window_layers on; the common checkpoints leave it off.
void read_qwen2_window(const ConfigReader& r, const ModelConfig& c) {
  if (r.boolean("use_sliding_window", false) && r.has("sliding_window")) {
    if (r.integer("max_window_layers", 28) < c.num_layers)
      r.fail("use_sliding_window", "with max_window_layers < num_hidden_layers is not supported");
  }
}

// LayerNorm families whose MLP is up -> act -> down.
void plain_layernorm_block(ModelConfig& c) {
  c.norm = NormKind::layer;
  c.norm_bias = true;
  c.gated_mlp = false;
}

void both_attention_biases(const ConfigReader& r, ModelConfig& c, std::string_view key, bool def) {
  c.attention_bias = c.attention_out_bias = r.boolean(key, def);
}

void read_gemma_like(const ConfigReader& r, ModelConfig& c, const LlamaDefaults& d) {
  read_llama_like(r, c, d);
  c.head_dim = r.positive("head_dim", 256);
  c.activation = parse_activation(r, "hidden_activation", "gelu_pytorch_tanh");
  c.norm = NormKind::rms_one_plus;
  c.embedding_scale = std::sqrt(static_cast<double>(c.hidden_size));
  both_attention_biases(r, c, "attention_bias", false);
}

void read_experts(const ConfigReader& r, ModelConfig& c, std::string_view count_key, int64_t count,
                  int64_t top_k) {
  c.num_experts = r.positive(count_key, count);
  c.experts_per_token = r.positive("num_experts_per_tok", top_k);
  if (c.experts_per_token > c.num_experts)
    r.fail("num_experts_per_tok", "must not exceed the number of experts (" + std::to_string(c.num_experts) + ")");
}

using FamilyReader = std::function<void(const ConfigReader&, ModelConfig&)>;

const std::vector<std::pair<std::string, FamilyReader>>& families() {
  static const std::vector<std::pair<std::string, FamilyReader>> kFamilies = {
      {"llama",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 11008, 32, 32, 2048, 1e-6, false, "silu"});
         both_attention_biases(r, c, "attention_bias", false);
         c.mlp_bias = r.boolean("mlp_bias", false);
       }},
      {"mistral",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 14336, 32, 32, 4096 * 32, 1e-6, false, "silu", "rms_norm_eps", 8});
         read_sliding_window(r, c, 4096);
       }},
      {"qwen2",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {151936, 4096, 22016, 32, 32, 32768, 1e-6, false, "silu"});
         c.attention_bias = true;  // q/k/v carry a bias; o_proj does not
         read_qwen2_window(r, c);
       }},
      {"granite",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 11008, 32, 32, 2048, 1e-6, false, "silu"});
         both_attention_biases(r, c, "attention_bias", false);
         c.mlp_bias = r.boolean("mlp_bias", false);
         c.embedding_scale = r.number("embedding_multiplier", 1.0);
         c.residual_multiplier = r.number("residual_multiplier", 1.0);
         c.attention_scale = r.number("attention_multiplier", 1.0);
         c.logits_divisor = r.positive_number("logits_scaling", 1.0);
       }},
      {"gemma",
       [](const ConfigReader& r, ModelConfig& c) {
         read_gemma_like(r, c, {256000, 3072, 24576, 28, 16, 8192, 1e-6, true, "gelu_pytorch_tanh"});
       }},
      {"gemma2",
       [](const ConfigReader& r, ModelConfig& c) {
         read_gemma_like(r, c,
                         {256000, 2304, 9216, 26, 8, 8192, 1e-6, true, "gelu_pytorch_tanh", "rms_norm_eps", 4});
         c.attention_scale = 1.0 / std::sqrt(r.positive_number("query_pre_attn_scalar", 256.0));
         c.attn_logit_softcap = r.nullable_number("attn_logit_softcapping", 50.0);
         c.final_logit_softcap = r.nullable_number("final_logit_softcapping", 30.0);
         // A cap divides (cap * tanh(x / cap)): null turns it off, zero or below is an error.
         if (c.attn_logit_softcap && r.has("attn_logit_softcapping")) r.positive_number("attn_logit_softcapping");
         if (c.final_logit_softcap && r.has("final_logit_softcapping")) r.positive_number("final_logit_softcapping");
         c.sandwich_norm = true;
         // transformers 4.48 Gemma2DecoderLayer: is_sliding = not bool(layer_idx % 2).
         read_sliding_window(r, c, 4096);
         c.sliding_layers = ModelConfig::SlidingLayers::even;
       }},
      {"gpt2",
       [](const ConfigReader& r, ModelConfig& c) {
         c.vocab_size = r.positive("vocab_size", 50257);
         c.hidden_size = r.positive("n_embd", 768);
         c.num_layers = r.positive("n_layer", 12);
         c.num_heads = c.num_kv_heads = r.positive("n_head", 12);
         c.head_dim = c.hidden_size / c.num_heads;
         c.intermediate_size = r.positive("n_inner", 4 * c.hidden_size);
         c.max_position_embeddings = r.positive("n_positions", 1024);
         c.norm_eps = r.positive_number("layer_norm_epsilon", 1e-5);
         c.activation = parse_activation(r, "activation_function", "gelu_new");
         c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
         plain_layernorm_block(c);
         c.positions = PositionKind::learned;
         c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
         if (!r.boolean("scale_attn_weights", true)) c.attention_scale = 1.0;
         reject_if_true(r, "scale_attn_by_inverse_layer_idx");
       }},
      {"gpt_neox",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {50432, 6144, 24576, 44, 64, 2048, 1e-5, false, "gelu", "layer_norm_eps"});
         plain_layernorm_block(c);
         both_attention_biases(r, c, "attention_bias", true);
         c.mlp_bias = true;
         c.parallel_residual = r.boolean("use_parallel_residual", true);
         c.partial_rotary_factor = r.fraction("rotary_pct", r.fraction("partial_rotary_factor", 0.25));
         c.rope_theta = r.positive_number("rope_theta", r.positive_number("rotary_emb_base", 10000.0));
       }},
      {"phi3",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32064, 3072, 8192, 32, 32, 4096, 1e-5, false, "silu"});
         c.partial_rotary_factor = r.fraction("partial_rotary_factor", 1.0);
         read_sliding_window(r, c, std::nullopt);
       }},
      {"phi",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {51200, 2048, 8192, 24, 32, 2048, 1e-5, false, "gelu_new", "layer_norm_eps"});
         plain_layernorm_block(c);
         c.attention_bias = c.attention_out_bias = c.mlp_bias = c.lm_head_bias = true;
         c.parallel_residual = c.parallel_shared_norm = true;
         c.partial_rotary_factor = r.fraction("partial_rotary_factor", 0.5);
         reject_if_true(r, "qk_layernorm");
       }},
      {"starcoder2",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c,
                         {49152, 3072, 12288, 30, 24, 4096, 1e-5, true, "gelu_pytorch_tanh", "norm_epsilon", 2});
         plain_layernorm_block(c);
         const bool bias = r.boolean("use_bias", true);
         c.attention_bias = c.attention_out_bias = c.mlp_bias = bias;
         read_sliding_window(r, c, std::nullopt);
       }},
      {"stablelm",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {50304, 2560, 6912, 32, 32, 4096, 1e-5, false, "silu", "layer_norm_eps"});
         c.norm = NormKind::layer;
         c.norm_bias = true;
         c.attention_bias = r.boolean("use_qkv_bias", false);
         c.parallel_residual = r.boolean("use_parallel_residual", false);
         c.parallel_shared_norm = true;
         c.partial_rotary_factor = r.fraction("partial_rotary_factor", 0.25);
         reject_if_true(r, "qk_layernorm");
       }},
      {"olmo",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {50304, 4096, 11008, 32, 32, 2048, 1e-5, false, "silu"});
         // OlmoLayerNorm: no weight, no bias, eps fixed at 1e-5.
         c.norm = NormKind::layer;
         c.norm_weight = false;
         c.norm_eps = 1e-5;
         both_attention_biases(r, c, "attention_bias", false);
         if (auto clip = r.nullable_number("clip_qkv", std::nullopt)) {
           if (*clip <= 0) r.fail("clip_qkv", "must be positive");
           c.clip_qkv = clip;
         }
       }},
      {"olmo2",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {50304, 4096, 11008, 32, 32, 2048, 1e-5, false, "silu"});
         both_attention_biases(r, c, "attention_bias", false);
         c.pre_norm = false;
         c.sandwich_norm = true;
         c.qk_norm = true;
       }},
      {"cohere",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {256000, 8192, 22528, 40, 64, 8192, 1e-5, true, "silu", "layer_norm_eps"});
         c.norm = NormKind::layer;  // CohereLayerNorm: weight, no bias
         both_attention_biases(r, c, "attention_bias", false);
         c.parallel_residual = c.parallel_shared_norm = true;
         c.logits_multiplier = r.number("logit_scale", 0.0625);
         c.rope_interleaved = true;
         reject_if_true(r, "use_qk_norm");
       }},
      {"mixtral",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c,
                         {32000, 4096, 14336, 32, 32, 4096 * 32, 1e-5, false, "silu", "rms_norm_eps", 8, 1e6});
         read_sliding_window(r, c, std::nullopt);
         read_experts(r, c, "num_local_experts", 8, 2);
         c.expert_intermediate_size = c.intermediate_size;
         c.renormalize_top_k = true;
       }},
      {"qwen2_moe",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {151936, 2048, 5632, 24, 16, 32768, 1e-6, false, "silu"});
         c.attention_bias = true;
         read_qwen2_window(r, c);
         read_experts(r, c, "num_experts", 60, 4);
         c.expert_intermediate_size = r.positive("moe_intermediate_size", 1408);
         c.shared_expert_intermediate_size = r.positive("shared_expert_intermediate_size", 5632);
         c.renormalize_top_k = r.boolean("norm_topk_prob", false);
         c.moe_layer_step = r.positive("decoder_sparse_step", 1);
         c.dense_layers = r.ids("mlp_only_layers");
       }},
  };
  return kFamilies;
}

}  // namespace

bool ModelConfig::layer_uses_sliding_window(int64_t layer) const {
  if (!sliding_window) return false;
  return sliding_layers == SlidingLayers::all || layer % 2 == 0;
}

bool ModelConfig::layer_uses_experts(int64_t layer) const {
  if (num_experts == 0) return false;
  if (std::find(dense_layers.begin(), dense_layers.end(), layer) != dense_layers.end()) return false;
  return (layer + 1) % moe_layer_step == 0;
}

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> kTypes = [] {
    std::vector<std::string> t;
    for (const auto& [name, fn] : families()) t.push_back(name);
    return t;
  }();
  return kTypes;
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  if (!std::filesystem::exists(path))
    throw InputError(dir.string() + ": no config.json (expected a Hugging Face model directory)");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  auto text = read_file(path);
  if (parser.parse(text).get(root)) throw InputError(path.string() + ": not valid JSON");
  simdjson::dom::object obj;
  if (root.get(obj)) throw InputError(path.string() + ": not a JSON object");
  ConfigReader r(path, obj);

  ModelConfig c;
  c.source = path;
  if (!r.has("model_type")) r.fail("model_type", "is missing");
  c.model_type = r.string("model_type", "");
  const auto& fams = families();
  auto it = std::find_if(fams.begin(), fams.end(), [&](const auto& f) { return f.first == c.model_type; });
  if (it == fams.end()) {
    std::string list;
    for (const auto& t : supported_model_types()) list += (list.empty() ? "" : ", ") + t;
    throw InputError(path.string() + ": unsupported model_type '" + c.model_type + "' (supported: " + list + ")");
  }
  it->second(r, c);

  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_kv_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_heads) + ")");
  c.bos_token_ids = r.ids("bos_token_id");
  c.eos_token_ids = r.ids("eos_token_id");
  if (r.has("pad_token_id")) c.pad_token_id = r.integer("pad_token_id");

  // generation_config.json's ids win: it is what generate() uses in transformers.
  const auto gen_path = dir / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    auto gtext = read_file(gen_path);
    simdjson::dom::element groot;
    simdjson::dom::object gobj;
    if (parser.parse(gtext).get(groot) || groot.get(gobj))
      throw InputError(gen_path.string() + ": not a valid JSON object");
    ConfigReader g(gen_path, gobj);
    if (auto ids = g.ids("eos_token_id"); !ids.empty()) c.eos_token_ids = ids;
    if (auto ids = g.ids("bos_token_id"); !ids.empty()) c.bos_token_ids = ids;
    if (g.has("pad_token_id") && !c.pad_token_id) c.pad_token_id = g.integer("pad_token_id");
  }
  return c;
}

}  // namespace pizza
