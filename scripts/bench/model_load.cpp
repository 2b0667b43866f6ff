// Loading against the memory-bandwidth bound (issue #16 item 2).
//   bench_model_load make-checkpoint DIR   random-weight bfloat16 Llama, 1.1B shape (TinyLlama)
//   bench_model_load run DIR THREADS       warm load time (best of 3) and GB/s, memcpy GB/s
// Load GB/s counts bytes read from the checkpoint plus bytes written to the weights, as the
// memcpy figure counts bytes read plus bytes written.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_writer.h"
#include "model/model.h"

namespace {

using namespace pizza;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// TinyLlama's 1.1B shape: hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632,
// vocab 32000, untied, bfloat16.
const test::LlamaShape kShape{2048, 22, 32, 4, 5632, 32000, false, torch::kBFloat16};

// Best of 5 memcpy of 1 GiB with `threads` threads: (bytes read + bytes written) / s.
double memcpy_gbs(int threads) {
  const size_t n = size_t{1} << 30;
  std::vector<char> a(n, 1), b(n, 0);
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    std::vector<std::thread> pool;
    const size_t per = n / static_cast<size_t>(threads);
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { std::memcpy(&b[per * static_cast<size_t>(t)], &a[per * static_cast<size_t>(t)], per); });
    for (auto& th : pool) th.join();
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(n) / best / 1e9;
}

int run(const std::filesystem::path& dir, int threads) {
  const auto rt = apply_runtime({"cpu", "float32", threads});
  const double file_bytes = static_cast<double>(std::filesystem::file_size(dir / "model.safetensors"));
  LanguageModel::load_weights(dir, rt);  // warm: the file in the page cache
  double best = 1e9, out_bytes = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    auto lm = LanguageModel::load_weights(dir, rt);
    best = std::min(best, seconds_since(t0));
    std::set<const void*> seen;
    out_bytes = 0;
    for (const auto& p : lm->model().named_parameters())
      if (seen.insert(p.value().data_ptr()).second)
        out_bytes += static_cast<double>(p.value().numel() * p.value().element_size());
  }
  std::printf("threads=%d load_s=%.3f load_gbs=%.2f memcpy_gbs=%.2f read_gb=%.2f written_gb=%.2f\n", threads, best,
              (file_bytes + out_bytes) / best / 1e9, memcpy_gbs(threads), file_bytes / 1e9, out_bytes / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc >= 2 ? argv[1] : "";
  if (cmd == "make-checkpoint" && argc >= 3) {
    test::write_random_llama(argv[2], kShape);
    return 0;
  }
  if (cmd == "run" && argc >= 4) return run(argv[2], std::stoi(argv[3]));
  std::fprintf(stderr, "usage: %s make-checkpoint DIR | run DIR THREADS\n", argv[0]);
  return 2;
}
