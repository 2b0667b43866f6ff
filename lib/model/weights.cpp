#include "model/weights.h"

#include <map>
#include <memory>
#include <sstream>

#include "util/error.h"

#include <ATen/Parallel.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

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

// Where one family keeps its tensors: canonical module names (see weights.h) to checkpoint
// module names, globally and relative to one layer's prefix. Leaves (.weight/.bias) are kept.
struct Layout {
  std::string layer_prefix = "model.layers.";
  std::map<std::string, WeightSource> global = {
      {"embed", {"model.embed_tokens"}}, {"final_norm", {"model.norm"}}, {"lm_head", {"lm_head"}}};
  std::map<std::string, WeightSource> layer = {
      {"attn_norm", {"input_layernorm"}},  {"attn.q", {"self_attn.q_proj"}},
      {"attn.k", {"self_attn.k_proj"}},    {"attn.v", {"self_attn.v_proj"}},
      {"attn.o", {"self_attn.o_proj"}},    {"mlp_norm", {"post_attention_layernorm"}},
      {"mlp.gate", {"mlp.gate_proj"}},     {"mlp.up", {"mlp.up_proj"}},
      {"mlp.down", {"mlp.down_proj"}}};
};

WeightSource rows(std::string key, int64_t begin, int64_t end, int64_t groups = 1, bool transpose = false) {
  return WeightSource{std::move(key), transpose, begin, end, groups};
}

// q, k, v as consecutive row blocks of one fused projection (after any transpose).
void fused_qkv(Layout& l, const ModelConfig& c, const std::string& key, bool transpose) {
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  l.layer["attn.q"] = rows(key, 0, q, 1, transpose);
  l.layer["attn.k"] = rows(key, q, q + kv, 1, transpose);
  l.layer["attn.v"] = rows(key, q + kv, q + 2 * kv, 1, transpose);
}

// Llama's layout, adjusted per family. load_model_config admits only supported families, and
// each of them is either Llama-named or handled here.
// num_experts comes from config.json: before a name is built per expert, the checkpoint must
// hold the last expert's tensor (`expert_key(last)`) in the first layer that has experts; a
// count of 1e9 would otherwise build billions of names before any tensor is looked at.
void require_last_expert(const ModelConfig& c, const TensorStore& store, const std::string& layer_prefix,
                         const std::function<std::string(int64_t)>& expert_key) {
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    if (!c.layer_uses_experts(layer)) continue;
    const std::string key = layer_prefix + std::to_string(layer) + "." + expert_key(c.num_experts - 1);
    if (!store.contains(key))
      throw InputError(c.source.string() + ": the config says " + std::to_string(c.num_experts) +
                       " experts, but " + store.path().string() + " has no tensor '" + key + "'");
    return;
  }
}

Layout layout_for(const ModelConfig& c, const TensorStore& store) {
  Layout l;
  const auto& t = c.model_type;
  if (t == "gemma2") {
    l.layer["attn_out_norm"] = {"post_attention_layernorm"};
    l.layer["mlp_norm"] = {"pre_feedforward_layernorm"};
    l.layer["mlp_out_norm"] = {"post_feedforward_layernorm"};
  } else if (t == "olmo2") {
    l.layer.erase("attn_norm");
    l.layer.erase("mlp_norm");
    l.layer["attn_out_norm"] = {"post_attention_layernorm"};
    l.layer["mlp_out_norm"] = {"post_feedforward_layernorm"};
    l.layer["attn.q_norm"] = {"self_attn.q_norm"};
    l.layer["attn.k_norm"] = {"self_attn.k_norm"};
  } else if (t == "phi") {
    l.global["final_norm"] = {"model.final_layernorm"};
    l.layer.erase("mlp_norm");
    l.layer["attn.o"] = {"self_attn.dense"};
    l.layer["mlp.up"] = {"mlp.fc1"};
    l.layer["mlp.down"] = {"mlp.fc2"};
  } else if (t == "starcoder2") {
    l.layer["mlp.up"] = {"mlp.c_fc"};
    l.layer["mlp.down"] = {"mlp.c_proj"};
  } else if (t == "phi3") {
    fused_qkv(l, c, "self_attn.qkv_proj", false);
    l.layer["mlp.gate"] = rows("mlp.gate_up_proj", 0, c.intermediate_size);
    l.layer["mlp.up"] = rows("mlp.gate_up_proj", c.intermediate_size, 2 * c.intermediate_size);
  } else if (t == "gpt2") {
    // save_pretrained of GPT2LMHeadModel prefixes "transformer."; hub checkpoints (gpt2,
    // distilgpt2) store the bare GPT2Model names.
    const std::string p = store.contains("transformer.wte.weight") ? "transformer." : "";
    l.layer_prefix = p + "h.";
    l.global = {{"embed", {p + "wte"}}, {"pos_embed", {p + "wpe"}}, {"final_norm", {p + "ln_f"}}};
    l.layer = {{"attn_norm", {"ln_1"}},
               {"attn.o", {"attn.c_proj", true}},
               {"mlp_norm", {"ln_2"}},
               {"mlp.up", {"mlp.c_fc", true}},
               {"mlp.down", {"mlp.c_proj", true}}};
    fused_qkv(l, c, "attn.c_attn", true);  // Conv1D [in, 3*D]: transposed, q|k|v are row thirds
  } else if (t == "gpt_neox") {
    l.layer_prefix = "gpt_neox.layers.";
    l.global = {{"embed", {"gpt_neox.embed_in"}},
                {"final_norm", {"gpt_neox.final_layer_norm"}},
                {"lm_head", {"embed_out"}}};
    // query_key_value is laid out per head: [heads, (q | k | v), head_dim].
    const int64_t hd = c.head_dim, H = c.num_heads;
    l.layer = {{"attn_norm", {"input_layernorm"}},
               {"attn.q", rows("attention.query_key_value", 0, hd, H)},
               {"attn.k", rows("attention.query_key_value", hd, 2 * hd, H)},
               {"attn.v", rows("attention.query_key_value", 2 * hd, 3 * hd, H)},
               {"attn.o", {"attention.dense"}},
               {"mlp_norm", {"post_attention_layernorm"}},
               {"mlp.up", {"mlp.dense_h_to_4h"}},
               {"mlp.down", {"mlp.dense_4h_to_h"}}};
  } else if (t == "mixtral") {
    require_last_expert(c, store, l.layer_prefix,
                        [](int64_t e) { return "block_sparse_moe.experts." + std::to_string(e) + ".w1.weight"; });
    l.layer["moe.router"] = {"block_sparse_moe.gate"};
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const auto from = "moe.experts." + std::to_string(e) + ".", to = "block_sparse_moe.experts." + std::to_string(e) + ".";
      l.layer[from + "gate"] = {to + "w1"};
      l.layer[from + "up"] = {to + "w3"};
      l.layer[from + "down"] = {to + "w2"};
    }
  } else if (t == "qwen2_moe") {
    require_last_expert(c, store, l.layer_prefix,
                        [](int64_t e) { return "mlp.experts." + std::to_string(e) + ".gate_proj.weight"; });
    l.layer["moe.router"] = {"mlp.gate"};
    l.layer["moe.shared_gate"] = {"mlp.shared_expert_gate"};
    for (const char* proj : {"gate", "up", "down"}) {
      l.layer["moe.shared." + std::string(proj)] = {"mlp.shared_expert." + std::string(proj) + "_proj"};
      for (int64_t e = 0; e < c.num_experts; ++e)
        l.layer["moe.experts." + std::to_string(e) + "." + proj] = {"mlp.experts." + std::to_string(e) + "." + proj +
                                                                     "_proj"};
    }
  }
  return l;
}

std::optional<WeightSource> resolve(const Layout& l, const std::string& canonical) {
  const auto dot = canonical.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string module = canonical.substr(0, dot), leaf = canonical.substr(dot);
  if (module.rfind("layers.", 0) == 0) {
    const auto d2 = module.find('.', 7);
    if (d2 == std::string::npos) return std::nullopt;
    auto it = l.layer.find(module.substr(d2 + 1));
    if (it == l.layer.end()) return std::nullopt;
    WeightSource src = it->second;
    src.key = l.layer_prefix + module.substr(7, d2 - 7) + "." + src.key + leaf;
    return src;
  }
  auto it = l.global.find(module);
  if (it == l.global.end()) return std::nullopt;
  WeightSource src = it->second;
  src.key += leaf;
  return src;
}

}  // namespace

TensorStore::TensorStore(const checkpoint::Checkpoint& ck)
    : find_([&ck](std::string_view n) { return ck.find(n); }), path_(ck.path()) {}

TensorStore::TensorStore(const checkpoint::Llama2cFile& f)
    : find_([&f](std::string_view n) { return f.find(n); }), path_(f.path()) {}

const checkpoint::TensorView& TensorStore::get(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw InputError("missing tensor '" + std::string(name) + "' in " + path_.string());
}

WeightMap weight_map_for(const ModelConfig& cfg, const TensorStore& store) {
  auto layout = std::make_shared<const Layout>(layout_for(cfg, store));
  const auto head = resolve(*layout, "lm_head.weight");
  // Tied (or tie left implicit by save_pretrained): the output projection is the embedding.
  const bool tied = cfg.tie_word_embeddings || !head || !store.contains(head->key);
  return [layout, tied](const std::string& c) -> std::optional<WeightSource> {
    if (tied && c == "lm_head.weight") return resolve(*layout, "embed.weight");
    return resolve(*layout, c);
  };
}

namespace {

// The checkpoint tensor in its own dtype: a view of the mapping when aligned, else a copy.
torch::Tensor source_tensor(const checkpoint::TensorView& view) {
  const auto src_dtype = torch_dtype(view.dtype, view.name);
  const bool aligned = reinterpret_cast<uintptr_t>(view.data) % checkpoint::dtype_size(view.dtype) == 0;
  // The mapping is read-only; from_blob never writes, and parameters never require grad.
  auto* ptr = const_cast<char*>(view.data);
  if (aligned) return torch::from_blob(ptr, view.shape, torch::TensorOptions().dtype(src_dtype));
  auto t = torch::empty(view.shape, torch::TensorOptions().dtype(src_dtype));
  std::memcpy(t.data_ptr(), ptr, view.nbytes);
  return t;
}

// Fresh memory for a converted weight. On Linux, large CPU ones are mapped 2 MiB-aligned and
// marked for transparent huge pages: with 4 KiB pages a 1.1B model's 4.4 GB of float32 takes a
// million page faults, each zeroed by the kernel, which cost several times the conversion.
torch::Tensor empty_weight(torch::IntArrayRef shape, torch::Dtype dtype, const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t huge = size_t{2} << 20;
  size_t bytes = c10::elementSize(dtype);
  for (auto d : shape) bytes *= static_cast<size_t>(d);
  if (device.is_cpu() && bytes >= 4 * huge) {
    const size_t rounded = (bytes + huge - 1) / huge * huge, len = rounded + huge;
    void* base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base != MAP_FAILED) {
      auto* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + huge - 1) / huge * huge);
      ::madvise(aligned, rounded, MADV_HUGEPAGE);  // advice only: 4 KiB pages if it is refused
      return torch::from_blob(aligned, shape, [base, len](void*) { ::munmap(base, len); }, opts);
    }
  }
#endif
  return torch::empty(shape, opts);
}

// In the compute dtype and device, contiguous: t itself when it already is, else converted.
torch::Tensor materialize(const torch::Tensor& t, torch::Dtype dtype, const torch::Device& device) {
  if (t.scalar_type() == dtype && device.is_cpu() && t.is_contiguous()) return t;
  auto out = empty_weight(t.sizes(), dtype, device);
  convert_into(out, t);
  return out;
}

}  // namespace

void convert_into(torch::Tensor& dst, const torch::Tensor& src) {
  if (dst.sizes() != src.sizes()) throw std::logic_error("convert_into: shapes differ");
  const bool cpu = dst.device().is_cpu() && src.device().is_cpu() && dst.is_contiguous() && src.is_contiguous();
  if (cpu && src.scalar_type() == torch::kBFloat16 && dst.scalar_type() == torch::kFloat32) {
    const auto* s = static_cast<const uint16_t*>(src.data_ptr());
    auto* d = static_cast<uint32_t*>(dst.data_ptr());
    // 64 Ki elements per task: big enough to amortise a task, small enough to balance threads.
    at::parallel_for(0, src.numel(), int64_t{1} << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = static_cast<uint32_t>(s[i]) << 16;
    });
    return;
  }
  if (cpu && src.scalar_type() == dst.scalar_type()) {
    const auto bytes = static_cast<int64_t>(src.element_size());
    const auto* s = static_cast<const char*>(src.data_ptr());
    auto* d = static_cast<char*>(dst.data_ptr());
    at::parallel_for(0, src.numel() * bytes, int64_t{1} << 18, [&](int64_t b, int64_t e) {
      std::memcpy(d + b, s + b, static_cast<size_t>(e - b));
    });
    return;
  }
  dst.copy_(src);  // ATen's strided, converting copy (itself parallel over the intra-op threads)
}

torch::Tensor tensor_from_view(const checkpoint::TensorView& view, torch::Dtype dtype, const torch::Device& device) {
  return materialize(source_tensor(view), dtype, device);  // zero-copy when F32 into F32, aligned
}

bool ParamSource::has(const std::string& canonical) const {
  auto src = map_(canonical);
  return src && store_.contains(src->key);
}

torch::Tensor ParamSource::maybe(const std::string& canonical) const {
  auto src = map_(canonical);
  if (!src || !store_.contains(src->key)) return {};
  return load(*src, canonical);
}

torch::Tensor ParamSource::get(const std::string& canonical) const {
  auto src = map_(canonical);
  if (!src) throw InputError("this model family has no weight for '" + canonical + "'");
  return load(*src, canonical);
}

torch::Tensor ParamSource::stacked(const std::vector<std::string>& canonicals,
                                   const std::function<void(const torch::Tensor&, const std::string&)>& check) const {
  std::vector<torch::Tensor> parts;
  int64_t rows = 0;
  for (const auto& c : canonicals) {
    auto src = map_(c);
    if (!src) throw InputError("this model family has no weight for '" + c + "'");
    parts.push_back(raw(*src, c));
    check(parts.back(), c);
    rows += parts.back().size(0);
  }
  auto shape = parts.at(0).sizes().vec();
  shape[0] = rows;
  auto out = empty_weight(shape, dtype_, device_);
  int64_t row = 0;
  for (const auto& part : parts) {
    auto slot = out.narrow(0, row, part.size(0));  // contiguous: whole rows
    convert_into(slot, part);
    row += part.size(0);
  }
  return out;
}

torch::Tensor ParamSource::raw(const WeightSource& src, const std::string& canonical) const {
  auto t = source_tensor(store_.get(src.key));
  const bool transpose = src.transpose && t.dim() == 2;
  if (transpose) t = t.t();
  if (src.row_begin >= 0) {
    const int64_t groups = src.row_groups, n = t.dim() > 0 ? t.size(0) : 0;
    if (groups <= 0 || n % groups != 0 || src.row_end > n / groups || src.row_begin > src.row_end) {
      std::ostringstream ss;
      ss << "tensor '" << src.key << "' in " << store_.path().string() << " has shape " << t.sizes()
         << (transpose ? " (transposed)" : "") << ", which cannot hold '" << canonical << "'";
      throw InputError(ss.str());
    }
    auto inner = t.sizes().vec();
    inner[0] = n / groups;
    inner.insert(inner.begin(), groups);
    auto out = t.sizes().vec();
    out[0] = -1;
    // A view while the rows stay evenly strided (no copy before the one converting pass).
    t = t.reshape(inner).slice(1, src.row_begin, src.row_end).reshape(out);
  }
  return t;
}

torch::Tensor ParamSource::load(const WeightSource& src, const std::string& canonical) const {
  const bool whole = !src.transpose && src.row_begin < 0;
  if (whole) {
    if (auto it = converted_.find(src.key); it != converted_.end()) return it->second;
  }
  auto t = materialize(raw(src, canonical), dtype_, device_);
  if (whole) converted_.emplace(src.key, t);
  return t;
}

}  // namespace pizza
