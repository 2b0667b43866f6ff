#include "checkpoint/llama2c.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace pizza::checkpoint {

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

// Rows of one projection [n_heads * head_size, cols] from llama2.c's interleaved-pair order to
// rotate-half order: transformers' permute(w) = w.view(n_heads, hd/2, 2, cols).transpose(1, 2),
// i.e. new row (h, i, j) = old row (h, j, i) for i in {0, 1}, j < hd/2.
std::vector<float> permute_rotary_rows(const float* src, int64_t n_heads, int64_t head_size, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(n_heads * head_size * cols));
  const int64_t half = head_size / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t to = h * head_size + i * half + j, from = h * head_size + 2 * j + i;
        std::memcpy(out.data() + to * cols, src + from * cols, static_cast<size_t>(cols) * sizeof(float));
      }
  return out;
}

}  // namespace

bool is_llama2c_path(const std::filesystem::path& path) { return path.extension() == ".bin"; }

Llama2cFile::Llama2cFile(const std::filesystem::path& path, Residency residency) : map_(path, residency) {
  auto fail = [&](const std::string& what) -> void {
    throw InputError(path.string() + ": invalid llama2.c checkpoint: " + what);
  };
  if (map_.size() < kHeaderBytes) fail("shorter than its 28-byte header");
  int32_t h[7];
  std::memcpy(h, map_.data(), kHeaderBytes);
  header_ = {h[0], h[1], h[2], h[3], h[4], h[5], h[6]};
  const auto& H = header_;
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads"};
  for (int i = 0; i < 5; ++i)
    if (h[i] <= 0) fail(std::string(names[i]) + " must be positive, got " + std::to_string(h[i]));
  if (H.vocab_size == 0 || H.seq_len <= 0)
    fail("vocab_size must be non-zero and seq_len positive, got " + std::to_string(H.vocab_size) + " and " +
         std::to_string(H.seq_len));
  if (H.dim % H.n_heads != 0 || H.head_size() % 2 != 0)
    fail("dim " + std::to_string(H.dim) + " is not n_heads (" + std::to_string(H.n_heads) + ") x an even head size");
  if (H.n_heads % H.n_kv_heads != 0)
    fail("n_kv_heads " + std::to_string(H.n_kv_heads) + " does not divide n_heads " + std::to_string(H.n_heads));

  // The float32 arrays in file order; sizes in floats. Bound the largest products first so
  // that none of the int64 arithmetic below can overflow on a corrupt header.
  {
    const long double big = std::ldexp(1.0L, 50);
    const long double d = H.dim, f = H.hidden_dim, l = H.n_layers, v = static_cast<long double>(H.vocab());
    if (l * d * std::max(d, f) > big || v * d > big || static_cast<long double>(H.seq_len) * d > big)
      fail("the header implies an impossibly large model");
  }
  const int64_t D = H.dim, F = H.hidden_dim, L = H.n_layers, V = H.vocab(), KV = H.kv_dim(), hs = H.head_size();
  struct Part {
    const char* what;
    int64_t count;
  };
  const Part parts[] = {
      {"token_embedding_table", V * D}, {"rms_att_weight", L * D}, {"wq", L * D * D}, {"wk", L * KV * D},
      {"wv", L * KV * D},               {"wo", L * D * D},         {"rms_ffn_weight", L * D}, {"w1", L * F * D},
      {"w2", L * D * F},                {"w3", L * F * D},         {"rms_final_weight", D},
      {"freq_cis_real", H.seq_len * hs / 2}, {"freq_cis_imag", H.seq_len * hs / 2},
      {"wcls", H.shared_classifier() ? 0 : V * D},
  };
  long double expected = kHeaderBytes;
  for (const auto& p : parts) expected += static_cast<long double>(p.count) * sizeof(float);
  if (expected != static_cast<long double>(map_.size())) {
    fail("the header (dim " + std::to_string(D) + ", hidden_dim " + std::to_string(F) + ", n_layers " +
         std::to_string(L) + ", vocab_size " + std::to_string(H.vocab_size) + ", seq_len " + std::to_string(H.seq_len) +
         ") implies " + std::to_string(static_cast<unsigned long long>(expected)) + " bytes but the file has " +
         std::to_string(map_.size()) + " (truncated, or not a legacy llama2.c export)");
  }

  // Array starts; the header is 28 bytes, so every float is 4-byte aligned in the mapping.
  const auto* base = reinterpret_cast<const float*>(map_.data() + kHeaderBytes);
  std::unordered_map<std::string_view, const float*> at;
  const float* cursor = base;
  for (const auto& p : parts) {
    at[p.what] = cursor;
    cursor += p.count;
  }

  permuted_.reserve(static_cast<size_t>(2 * L));
  add("model.embed_tokens.weight", {V, D}, at["token_embedding_table"]);
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    add(pre + "input_layernorm.weight", {D}, at["rms_att_weight"] + l * D);
    permuted_.push_back(permute_rotary_rows(at["wq"] + l * D * D, H.n_heads, hs, D));
    add(pre + "self_attn.q_proj.weight", {D, D}, permuted_.back().data());
    permuted_.push_back(permute_rotary_rows(at["wk"] + l * KV * D, H.n_kv_heads, hs, D));
    add(pre + "self_attn.k_proj.weight", {KV, D}, permuted_.back().data());
    add(pre + "self_attn.v_proj.weight", {KV, D}, at["wv"] + l * KV * D);
    add(pre + "self_attn.o_proj.weight", {D, D}, at["wo"] + l * D * D);
    add(pre + "post_attention_layernorm.weight", {D}, at["rms_ffn_weight"] + l * D);
    add(pre + "mlp.gate_proj.weight", {F, D}, at["w1"] + l * F * D);
    add(pre + "mlp.down_proj.weight", {D, F}, at["w2"] + l * D * F);
    add(pre + "mlp.up_proj.weight", {F, D}, at["w3"] + l * F * D);
  }
  add("model.norm.weight", {D}, at["rms_final_weight"]);
  if (!H.shared_classifier()) add("lm_head.weight", {V, D}, at["wcls"]);
}

void Llama2cFile::add(std::string name, std::vector<int64_t> shape, const float* data) {
  TensorView v;
  v.name = std::move(name);
  v.dtype = DType::F32;
  v.shape = std::move(shape);
  v.data = reinterpret_cast<const char*>(data);
  v.nbytes = static_cast<size_t>(v.numel()) * sizeof(float);
  by_name_[v.name] = tensors_.size();
  tensors_.push_back(std::move(v));
}

const TensorView* Llama2cFile::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

ModelConfig Llama2cFile::config() const {
  const auto& H = header_;
  ModelConfig c;  // the defaults are Llama's block traits: RMSNorm, SwiGLU, rotate-half RoPE
  c.model_type = "llama";
  c.source = path();
  c.vocab_size = H.vocab();
  c.hidden_size = H.dim;
  c.num_layers = H.n_layers;
  c.num_heads = H.n_heads;
  c.num_kv_heads = H.n_kv_heads;
  c.head_dim = H.head_size();
  c.intermediate_size = H.hidden_dim;
  c.max_position_embeddings = H.seq_len;
  c.norm = NormKind::rms;
  c.norm_eps = 1e-5;
  c.activation = Activation::silu;
  c.gated_mlp = true;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = H.shared_classifier();
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  return c;
}

}  // namespace pizza::checkpoint
