#include "model/weights.h"

#include <map>

#include "util/error.h"

namespace pizza {

namespace {

torch::Dtype torch_dtype(checkpoint::DType dt, const std::string& name) {
  using checkpoint::DType;
  switch (dt) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
    default:
      throw InputError("tensor '" + name + "' has dtype " + std::string(checkpoint::dtype_name(dt)) +
                       ", which pizza cannot compute with");
  }
}

// Llama-family layout: model.embed_tokens, model.layers.N.{input_layernorm, self_attn.*_proj,
// post_attention_layernorm, mlp.*_proj}, model.norm, lm_head.
std::optional<WeightSource> llama_map(const std::string& canonical) {
  static const std::map<std::string, std::string> kGlobal = {
      {"embed", "model.embed_tokens"}, {"final_norm", "model.norm"}, {"lm_head", "lm_head"}};
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm", "input_layernorm"}, {"attn.q", "self_attn.q_proj"}, {"attn.k", "self_attn.k_proj"},
      {"attn.v", "self_attn.v_proj"},   {"attn.o", "self_attn.o_proj"}, {"mlp_norm", "post_attention_layernorm"},
      {"mlp.gate", "mlp.gate_proj"},    {"mlp.up", "mlp.up_proj"},      {"mlp.down", "mlp.down_proj"}};
  auto dot = canonical.rfind('.');
  std::string module = canonical.substr(0, dot), leaf = canonical.substr(dot);
  if (module.rfind("layers.", 0) == 0) {
    auto d2 = module.find('.', 7);
    std::string idx = module.substr(7, d2 - 7), rest = module.substr(d2 + 1);
    auto it = kLayer.find(rest);
    if (it == kLayer.end()) return std::nullopt;
    return WeightSource{"model.layers." + idx + "." + it->second + leaf};
  }
  auto it = kGlobal.find(module);
  if (it == kGlobal.end()) return std::nullopt;
  return WeightSource{it->second + leaf};
}

}  // namespace

WeightMap weight_map_for(const ModelConfig& cfg, const checkpoint::Checkpoint& ck) {
  WeightMap base = llama_map;
  if (cfg.tie_word_embeddings || !ck.contains("lm_head.weight")) {
    // Tied (or tie left implicit by save_pretrained): the output projection is the embedding.
    return [base](const std::string& c) -> std::optional<WeightSource> {
      if (c == "lm_head.weight") return base("embed.weight");
      return base(c);
    };
  }
  return base;
}

torch::Tensor tensor_from_view(const checkpoint::TensorView& view, torch::Dtype dtype, const torch::Device& device) {
  const auto src_dtype = torch_dtype(view.dtype, view.name);
  const bool aligned = reinterpret_cast<uintptr_t>(view.data) % checkpoint::dtype_size(view.dtype) == 0;
  // The mapping is read-only; from_blob never writes, and parameters never require grad.
  auto* ptr = const_cast<char*>(view.data);
  torch::Tensor t;
  if (aligned) {
    t = torch::from_blob(ptr, view.shape, torch::TensorOptions().dtype(src_dtype));
  } else {
    t = torch::empty(view.shape, torch::TensorOptions().dtype(src_dtype));
    std::memcpy(t.data_ptr(), ptr, view.nbytes);
  }
  if (src_dtype == dtype && device.is_cpu()) return t;  // zero-copy when aligned
  return t.to(device, dtype);
}

bool ParamSource::has(const std::string& canonical) const {
  auto src = map_(canonical);
  return src && ck_.contains(src->key);
}

torch::Tensor ParamSource::maybe(const std::string& canonical) const {
  auto src = map_(canonical);
  if (!src || !ck_.contains(src->key)) return {};
  return load(*src, canonical);
}

torch::Tensor ParamSource::get(const std::string& canonical) const {
  auto src = map_(canonical);
  if (!src) throw InputError("this model family has no weight for '" + canonical + "'");
  return load(*src, canonical);
}

torch::Tensor ParamSource::load(const WeightSource& src, const std::string& canonical) const {
  auto t = tensor_from_view(ck_.get(src.key), dtype_, device_);
  if (src.row_begin >= 0) t = t.slice(0, src.row_begin, src.row_end);
  if (src.transpose) t = t.t().contiguous();
  (void)canonical;
  return t;
}

}  // namespace pizza
