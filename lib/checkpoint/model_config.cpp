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
    return d;
  }
  double number(std::string_view key, double def) const { return has(key) ? number(key) : def; }

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
};

void read_llama_like(const ConfigReader& r, ModelConfig& c, const LlamaDefaults& d) {
  c.vocab_size = r.positive("vocab_size", d.vocab);
  c.hidden_size = r.positive("hidden_size", d.hidden);
  c.intermediate_size = r.positive("intermediate_size", d.intermediate);
  c.num_layers = r.positive("num_hidden_layers", d.layers);
  c.num_heads = r.positive("num_attention_heads", d.heads);
  c.num_kv_heads = r.positive("num_key_value_heads", c.num_heads);
  c.head_dim = r.positive("head_dim", c.hidden_size / c.num_heads);
  c.max_position_embeddings = r.positive("max_position_embeddings", d.max_pos);
  c.norm_eps = r.number("rms_norm_eps", d.eps);
  c.rope_theta = r.number("rope_theta", 10000.0);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", d.tie);
  c.activation = parse_activation(r, "hidden_act", d.act);
  if (auto rs = r.object("rope_scaling")) {
    auto type = rs->string("rope_type", rs->string("type", "default"));
    if (type == "linear") {
      c.rope_scaling = RopeScaling::linear;
      c.rope_factor = rs->number("factor");
    } else if (type == "llama3") {
      c.rope_scaling = RopeScaling::llama3;
      c.rope_factor = rs->number("factor");
      c.rope_low_freq_factor = rs->number("low_freq_factor");
      c.rope_high_freq_factor = rs->number("high_freq_factor");
      c.rope_original_max_positions = rs->positive("original_max_position_embeddings");
    } else if (type != "default") {
      r.fail("rope_scaling", "has unsupported rope_type '" + type + "' (supported: linear, llama3)");
    }
  }
}

using FamilyReader = std::function<void(const ConfigReader&, ModelConfig&)>;

const std::vector<std::pair<std::string, FamilyReader>>& families() {
  static const std::vector<std::pair<std::string, FamilyReader>> kFamilies = {
      {"llama",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 11008, 32, 32, 2048, 1e-6, false, "silu"});
         c.attention_bias = c.attention_out_bias = r.boolean("attention_bias", false);
         c.mlp_bias = r.boolean("mlp_bias", false);
       }},
      {"mistral",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 14336, 32, 32, 4096 * 32, 1e-6, false, "silu"});
         if (r.has("sliding_window")) c.sliding_window = r.positive("sliding_window");
       }},
      {"qwen2",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {151936, 4096, 22016, 32, 32, 32768, 1e-6, false, "silu"});
         c.attention_bias = true;  // q/k/v carry a bias; o_proj does not
         // Qwen2 applies its window only when use_sliding_window is set, and then only from
         // layer max_window_layers on; the common checkpoints leave it off.
         if (r.boolean("use_sliding_window", false) && r.has("sliding_window")) {
           if (r.integer("max_window_layers", 28) < c.num_layers)
             r.fail("use_sliding_window", "with max_window_layers < num_hidden_layers is not supported");
         }
       }},
      {"granite",
       [](const ConfigReader& r, ModelConfig& c) {
         read_llama_like(r, c, {32000, 4096, 11008, 32, 32, 2048, 1e-6, false, "silu"});
         c.attention_bias = c.attention_out_bias = r.boolean("attention_bias", false);
         c.mlp_bias = r.boolean("mlp_bias", false);
         c.embedding_scale = r.number("embedding_multiplier", 1.0);
         c.residual_multiplier = r.number("residual_multiplier", 1.0);
         c.attention_scale = r.number("attention_multiplier", 1.0);
         c.logits_divisor = r.number("logits_scaling", 1.0);
       }},
  };
  return kFamilies;
}

}  // namespace

bool ModelConfig::layer_uses_sliding_window(int64_t layer) const {
  if (!sliding_window) return false;
  return sliding_layers == SlidingLayers::all || layer % 2 == 0;
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
