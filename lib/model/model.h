// A loaded language model: checkpoint mapping + configured transformer + tokenizer, and the
// runtime settings (dtype, device, threads) they were loaded with.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "checkpoint/llama2c.h"
#include "checkpoint/model_config.h"
#include "checkpoint/model_tokenizer.h"
#include "checkpoint/safetensors.h"
#include "model/runtime_options.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace pizza {

// Parses the runtime strings; UsageError for unknown names, InputError when CUDA is asked of
// a libtorch built without it. Also applies the thread count to libtorch and OpenBLAS, and
// tunes malloc for tensor workloads (keep_freed_tensor_memory).
struct Runtime {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  int threads = 1;
  // Weight files mapped (zero-copy views; a file rewritten in place shows through) or read into
  // memory at load (--no-mmap).
  Residency weights = Residency::mapped;
};
Runtime apply_runtime(const RuntimeOptions& opts);

// Kernel threads (libtorch's intra-op pool and OpenBLAS's) set to n for the guard's lifetime
// and restored after. Threads started inside the scope size their libtorch pools from it.
class KernelThreads {
 public:
  explicit KernelThreads(int n);
  ~KernelThreads();
  KernelThreads(const KernelThreads&) = delete;
  KernelThreads& operator=(const KernelThreads&) = delete;

 private:
  int previous_;
};

class LanguageModel {
 public:
  // dir: a Hugging Face model directory, or a llama2.c checkpoint file (*.bin). tokenizer:
  // optional override (file or directory); for a .bin without one, tokenizer.model or
  // tok*.model beside it.
  static std::unique_ptr<LanguageModel> load(const std::filesystem::path& dir, const Runtime& rt,
                                             const std::optional<std::filesystem::path>& tokenizer = std::nullopt);
  // The weights alone (checkpoints without a tokenizer, e.g. test fixtures); dir may also be
  // a llama2.c .bin file.
  static std::unique_ptr<LanguageModel> load_weights(const std::filesystem::path& dir, const Runtime& rt);

  const Transformer& model() const { return *model_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // Throws InputError when the model was loaded without one.
  const Tokenizer& tokenizer() const;
  const ModelConfig& config() const { return model_->config(); }
  const std::filesystem::path& path() const { return path_; }
  const Runtime& runtime() const { return runtime_; }

  // Token ids that end generation: the config's eos ids plus the tokenizer's.
  std::vector<int64_t> stop_ids() const;

 private:
  LanguageModel() = default;
  // load_weights without the out-of-memory context (see util/error.h's reading()).
  static std::unique_ptr<LanguageModel> load_weights_unchecked(const std::filesystem::path& dir, const Runtime& rt);
  std::filesystem::path path_;
  Runtime runtime_;
  std::unique_ptr<checkpoint::Checkpoint> checkpoint_;  // owns the mapped weights (safetensors)
  std::unique_ptr<checkpoint::Llama2cFile> llama2c_;     // or these (llama2.c .bin)
  std::shared_ptr<Transformer> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace pizza
