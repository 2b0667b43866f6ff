// llama2.c's legacy checkpoint (.bin, as written by export.py's legacy_export / run.c):
// a header of 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len), then float32 arrays in a fixed order. A negative vocab_size means the
// classifier is stored separately at the end; a positive one means it is the embedding.
//
// The file is exposed as a synthetic checkpoint: TensorViews under Hugging Face Llama names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...), so the model loads
// it through the same weight map as a safetensors Llama. llama2.c rotates interleaved pairs of
// q/k; q_proj/k_proj are permuted into transformers' rotate-half layout on load, exactly as
// transformers' convert_llama_weights_to_hf does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"
#include "util/file.h"

namespace pizza::checkpoint {

struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier() const { return vocab_size > 0; }
  int64_t vocab() const { return vocab_size < 0 ? -static_cast<int64_t>(vocab_size) : vocab_size; }
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return head_size() * n_kv_heads; }
};

// True when the path names a llama2.c checkpoint by extension (.bin).
bool is_llama2c_path(const std::filesystem::path& path);

class Llama2cFile {
 public:
  // Validates the header and the exact file size; InputError naming the file otherwise.
  explicit Llama2cFile(const std::filesystem::path& path, Residency residency = Residency::mapped);
  Llama2cFile(const Llama2cFile&) = delete;
  Llama2cFile& operator=(const Llama2cFile&) = delete;

  const std::filesystem::path& path() const { return map_.path(); }
  const Llama2cHeader& header() const { return header_; }
  // model_type llama with llama2.c's fixed settings (rms_norm_eps 1e-5, rope_theta 10000,
  // bos 1, eos 2, max positions = seq_len).
  ModelConfig config() const;

  const TensorView* find(std::string_view name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  void add(std::string name, std::vector<int64_t> shape, const float* data);

  MappedFile map_;
  Llama2cHeader header_;
  std::vector<std::vector<float>> permuted_;  // q/k in rotate-half order; outer vector reserved up front
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace pizza::checkpoint
