#include "model/model.h"

#include <algorithm>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

#include "blas/blas.h"
#include "util/allocator.h"
#include "util/error.h"

namespace pizza {

namespace {

// libtorch's intra-op pool and OpenBLAS's own pool, sized together.
void set_kernel_threads(int n) {
  torch::set_num_threads(n);
  blas::set_threads(n);
}

// The CPUs this process may run on: its affinity mask (taskset, cgroup cpusets), as nproc,
// OpenBLAS and libgomp count them; std::thread::hardware_concurrency() counts every online CPU
// even under `taskset -c 0`, which would oversubscribe a pinned process.
int available_cpus() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

Runtime apply_runtime(const RuntimeOptions& opts) {
  Runtime rt;
  if (opts.dtype == "float32") rt.dtype = torch::kFloat32;
  else if (opts.dtype == "float64") rt.dtype = torch::kFloat64;
  else if (opts.dtype == "bfloat16") rt.dtype = torch::kBFloat16;
  else throw UsageError("--dtype: unknown value '" + opts.dtype + "' (expected float32, float64 or bfloat16)");

  if (opts.device == "cpu") {
    rt.device = torch::kCPU;
  } else if (opts.device == "cuda" || opts.device.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw InputError("--device " + opts.device +
                       ": this pizza is linked against a libtorch without CUDA support (or no GPU is visible)");
    int index = 0;
    if (opts.device.size() > 5) {
      try {
        index = std::stoi(opts.device.substr(5));
      } catch (...) {
        throw UsageError("--device: bad CUDA index in '" + opts.device + "'");
      }
    }
    if (index < 0 || static_cast<size_t>(index) >= torch::cuda::device_count())
      throw InputError("--device " + opts.device + ": only " + std::to_string(torch::cuda::device_count()) +
                       " CUDA device(s) visible");
    rt.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  } else {
    throw UsageError("--device: unknown value '" + opts.device + "' (expected cpu, cuda or cuda:N)");
  }

  if (opts.threads < 0) throw UsageError("--threads must be positive, got " + std::to_string(opts.threads));
  rt.threads = opts.threads > 0 ? opts.threads : available_cpus();
  rt.weights = opts.map_weights ? Residency::mapped : Residency::copied;
  set_kernel_threads(rt.threads);
  keep_freed_tensor_memory();
  return rt;
}

KernelThreads::KernelThreads(int n) : previous_(torch::get_num_threads()) { set_kernel_threads(n); }

KernelThreads::~KernelThreads() { set_kernel_threads(previous_); }

std::unique_ptr<LanguageModel> LanguageModel::load(const std::filesystem::path& dir, const Runtime& rt,
                                                   const std::optional<std::filesystem::path>& tokenizer) {
  auto lm = load_weights(dir, rt);
  if (tokenizer) lm->tokenizer_ = load_tokenizer(*tokenizer);
  else lm->tokenizer_ = load_model_tokenizer(dir);
  if (lm->tokenizer_->vocab_size() > lm->config().vocab_size)
    throw InputError("tokenizer " + lm->tokenizer_->describe() + " has " + std::to_string(lm->tokenizer_->vocab_size()) +
                     " tokens but the model's vocab_size is " + std::to_string(lm->config().vocab_size));
  return lm;
}

const Tokenizer& LanguageModel::tokenizer() const {
  if (!tokenizer_) throw InputError(path_.string() + ": the model was loaded without a tokenizer");
  return *tokenizer_;
}

std::unique_ptr<LanguageModel> LanguageModel::load_weights(const std::filesystem::path& dir, const Runtime& rt) {
  return reading(dir.string(), [&] { return load_weights_unchecked(dir, rt); });
}

std::unique_ptr<LanguageModel> LanguageModel::load_weights_unchecked(const std::filesystem::path& dir,
                                                                     const Runtime& rt) {
  std::unique_ptr<LanguageModel> lm(new LanguageModel());
  lm->path_ = dir;
  lm->runtime_ = rt;
  ModelConfig cfg;
  std::optional<TensorStore> store;
  if (is_llama2c_file(dir)) {
    lm->llama2c_ = std::make_unique<checkpoint::Llama2cFile>(dir, rt.weights);
    cfg = lm->llama2c_->config();
    store.emplace(*lm->llama2c_);
  } else {
    if (!std::filesystem::is_directory(dir))
      throw InputError(dir.string() + ": not a model directory (no such directory) or llama2.c .bin file");
    cfg = load_model_config(dir);
    lm->checkpoint_ = std::make_unique<checkpoint::Checkpoint>(checkpoint::Checkpoint::open(dir, rt.weights));
    store.emplace(*lm->checkpoint_);
  }
  ParamSource params(*store, weight_map_for(cfg, *store), rt.dtype, rt.device);
  lm->model_ = std::make_shared<Transformer>(std::move(cfg), params, rt.dtype, rt.device);
  lm->model_->eval();
  return lm;
}

std::vector<int64_t> LanguageModel::stop_ids() const {
  auto ids = config().eos_token_ids;
  if (!tokenizer_) return ids;
  if (auto e = tokenizer_->eos_id(); e && std::find(ids.begin(), ids.end(), *e) == ids.end()) ids.push_back(*e);
  return ids;
}

}  // namespace pizza
