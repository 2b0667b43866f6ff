#include "checkpoint_writer.h"

#include <fstream>
#include <stdexcept>

#include "util/json_writer.h"

namespace pizza::test {

namespace {

const char* safetensors_dtype(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "F32";
    case torch::kBFloat16: return "BF16";
    case torch::kFloat16: return "F16";
    case torch::kFloat64: return "F64";
    default: throw std::logic_error(std::string("write_safetensors: no safetensors name for ") + c10::toString(dtype));
  }
}

int64_t byte_size(const TensorSpec& spec) {
  int64_t n = static_cast<int64_t>(c10::elementSize(spec.dtype));
  for (auto d : spec.shape) n *= d;
  return n;
}

}  // namespace

void write_safetensors(const std::filesystem::path& file, const std::vector<TensorSpec>& specs,
                       const std::function<torch::Tensor(const TensorSpec&)>& make) {
  JsonWriter header;
  header.begin_object();
  int64_t offset = 0;
  for (const auto& spec : specs) {
    const int64_t bytes = byte_size(spec);
    header.key(spec.name).begin_object().field("dtype", safetensors_dtype(spec.dtype)).key("shape").begin_array();
    for (auto d : spec.shape) header.value(d);
    header.end_array().key("data_offsets").begin_array().value(offset).value(offset + bytes).end_array().end_object();
    offset += bytes;
  }
  header.end_object();
  std::string h = header.take();
  while (h.size() % 8) h += ' ';
  std::ofstream f(file, std::ios::binary);
  const uint64_t n = h.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& spec : specs) {
    const auto t = make(spec).contiguous();
    if (t.scalar_type() != spec.dtype || t.sizes() != torch::IntArrayRef(spec.shape))
      throw std::logic_error("write_safetensors: the tensor made for " + spec.name + " is not of its spec's shape and dtype");
    f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(byte_size(spec)));
  }
  if (!f.flush()) throw std::runtime_error("write_safetensors: cannot write " + file.string());
}

void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.sizes().vec(), t.scalar_type()});
  size_t next = 0;
  write_safetensors(file, specs, [&](const TensorSpec&) { return tensors[next++].second; });
}

void write_random_llama(const std::filesystem::path& dir, const LlamaShape& s) {
  if (s.dtype != torch::kFloat32 && s.dtype != torch::kBFloat16)
    throw std::logic_error("write_random_llama: dtype must be float32 or bfloat16");
  const int64_t hd = s.hidden / s.heads;
  std::vector<TensorSpec> specs{{"model.embed_tokens.weight", {s.vocab, s.hidden}, s.dtype},
                                {"model.norm.weight", {s.hidden}, s.dtype}};
  if (!s.tied) specs.push_back({"lm_head.weight", {s.vocab, s.hidden}, s.dtype});
  for (int64_t l = 0; l < s.layers; ++l) {
    const auto p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {s.hidden}, s.dtype});
    specs.push_back({p + "post_attention_layernorm.weight", {s.hidden}, s.dtype});
    specs.push_back({p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}, s.dtype});
    specs.push_back({p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}, s.dtype});
    specs.push_back({p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}, s.dtype});
    specs.push_back({p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd}, s.dtype});
    specs.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, s.dtype});
    specs.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, s.dtype});
    specs.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, s.dtype});
  }
  std::filesystem::create_directories(dir);
  torch::manual_seed(0);
  write_safetensors(dir / "model.safetensors", specs, [](const TensorSpec& spec) {
    return (spec.shape.size() == 1 ? torch::ones(spec.shape) : torch::randn(spec.shape) * 0.02).to(spec.dtype);
  });
  const auto n = [](int64_t v) { return std::to_string(v); };
  std::ofstream config(dir / "config.json");
  config << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": )" << n(s.hidden) << R"(, "intermediate_size": )" << n(s.intermediate)
         << R"(, "num_hidden_layers": )" << n(s.layers) << R"(, "num_attention_heads": )" << n(s.heads) << R"(,
 "num_key_value_heads": )" << n(s.kv_heads) << R"(, "vocab_size": )" << n(s.vocab)
         << R"(, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": )" << (s.tied ? "true" : "false")
         << R"(, "bos_token_id": 1,
 "eos_token_id": 2, "torch_dtype": ")" << (s.dtype == torch::kBFloat16 ? "bfloat16" : "float32") << R"("})";
  if (!config.flush()) throw std::runtime_error("write_random_llama: cannot write " + (dir / "config.json").string());
}

}  // namespace pizza::test
