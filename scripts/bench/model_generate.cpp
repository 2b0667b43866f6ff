// Greedy decoding against the memory-bandwidth bound (issue #16 item 3).
//   bench_model_generate bandwidth THREADS   read-only sum and memcpy over 1 GiB, in GB/s
//   bench_model_generate run DIR THREADS     prefill tokens/s and decode ms/token of DIR
//   bench_model_generate profile DIR THREADS where one decode step's time goes
// Decoding one token streams every weight once (the embedding table only as the tied
// lm_head), so its floor is weight bytes / streaming bandwidth.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blas/blas.h"
#include "model/generate.h"
#include "model/model.h"

namespace {

using namespace pizza;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs f(begin, end) over [0, n) split into `threads` contiguous chunks, one std::thread each.
template <class F>
void chunked(size_t n, int threads, F f) {
  std::vector<std::thread> pool;
  const size_t per = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  for (int t = 0; t < threads; ++t) {
    const size_t b = std::min(n, per * static_cast<size_t>(t)), e = std::min(n, b + per);
    pool.emplace_back([=] { f(b, e); });
  }
  for (auto& th : pool) th.join();
}

// Best of 5 over a 1 GiB buffer (far beyond any cache): GB/s read (integer sum, which the
// compiler vectorises) and GB/s memcpy (bytes read + bytes written, as STREAM counts copy).
std::pair<double, double> bandwidth(int threads) {
  const size_t bytes = size_t{1} << 30, n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> a(n), b(n);
  chunked(n, threads, [&](size_t s, size_t e) {
    for (size_t i = s; i < e; ++i) a[i] = i, b[i] = 0;  // touch the pages in the threads that use them
  });
  double best_read = 1e9, best_copy = 1e9;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    auto t0 = Clock::now();
    chunked(n, threads, [&](size_t s, size_t e) {
      uint64_t acc = 0;
      for (size_t i = s; i < e; ++i) acc += a[i];
      sums[s / ((n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads))] = acc;
    });
    best_read = std::min(best_read, seconds_since(t0));
    for (auto v : sums) sink = sink + v;
    t0 = Clock::now();
    chunked(n, threads, [&](size_t s, size_t e) { std::memcpy(&b[s], &a[s], (e - s) * sizeof(uint64_t)); });
    best_copy = std::min(best_copy, seconds_since(t0));
  }
  return {static_cast<double>(bytes) / best_read / 1e9, 2.0 * static_cast<double>(bytes) / best_copy / 1e9};
}

// Bytes one decode step streams: every parameter except the embedding table (one row is
// gathered), each storage counted once (a tied lm_head is the table, read in full).
double streamed_bytes(const Transformer& m) {
  std::set<const void*> seen;
  double bytes = 0;
  for (const auto& p : m.named_parameters()) {
    if (p.key() == "embed") continue;
    const auto& t = p.value();
    if (!seen.insert(t.data_ptr()).second) continue;
    bytes += static_cast<double>(t.numel() * t.element_size());
  }
  return bytes;
}

std::vector<int64_t> prompt_ids(int64_t n) {
  std::vector<int64_t> ids{1};
  for (int64_t i = 1; i < n; ++i) ids.push_back(100 + (i * 37) % 20000);
  return ids;
}

int run(const std::string& dir, int threads) {
  auto lm = LanguageModel::load_weights(dir, apply_runtime({"cpu", "float32", threads}));
  const auto& m = lm->model();
  const auto prompt = prompt_ids(128);
  const int64_t new_tokens = 64;
  GenerateOptions one;
  one.max_new_tokens = 1;
  greedy_generate(m, {prompt}, one);  // warm-up: pages, allocator, thread pools
  double prefill = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    greedy_generate(m, {prompt}, one);
    prefill = std::min(prefill, seconds_since(t0));
  }
  GenerateOptions go;
  go.max_new_tokens = new_tokens + 1;
  double total = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    auto g = greedy_generate(m, {prompt}, go);
    total = std::min(total, seconds_since(t0));
    if (static_cast<int64_t>(g.at(0).tokens.size()) != new_tokens + 1) std::fprintf(stderr, "stopped early\n");
  }
  const double ms_per_token = (total - prefill) / static_cast<double>(new_tokens) * 1e3;
  // Machine-readable line for generate.sh.
  std::printf("threads=%d weight_bytes=%.0f ms_per_token=%.3f prefill_tokens_per_s=%.1f prompt=%zu\n", threads,
              streamed_bytes(m), ms_per_token, static_cast<double>(prompt.size()) / prefill, prompt.size());
  return 0;
}

// Decode-step anatomy: the whole step, then each weight's matrix-vector product alone.
int profile(const std::string& dir, int threads) {
  auto lm = LanguageModel::load_weights(dir, apply_runtime({"cpu", "float32", threads}));
  const auto& m = lm->model();
  torch::NoGradGuard ng;
  const auto prompt = prompt_ids(128);
  GenerateOptions go;
  go.max_new_tokens = 65;
  greedy_generate(m, {prompt}, go);
  {
    torch::autograd::profiler::RecordProfile guard("/tmp/pizza-generate-trace.json");
    greedy_generate(m, {prompt}, go);
  }
  // Products of every weight with one token's activations, as the decoder does them.
  std::set<const void*> seen;
  std::vector<torch::Tensor> weights;
  for (const auto& p : m.named_parameters()) {
    if (p.key() == "embed" || p.value().dim() != 2 || !seen.insert(p.value().data_ptr()).second) continue;
    weights.push_back(p.value());
  }
  for (int rep = 0; rep < 2; ++rep) {
    auto t0 = Clock::now();
    for (const auto& w : weights) torch::nn::functional::linear(torch::ones({1, 1, w.size(1)}), w);
    const double lin = seconds_since(t0);
    t0 = Clock::now();
    for (const auto& w : weights) torch::mv(w, torch::ones({w.size(1)}));
    std::printf("all weights once: linear [1,1,D] %.2f ms, mv %.2f ms\n", lin * 1e3, seconds_since(t0) * 1e3);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  blas::maybe_reexec_with_best_core(argc, argv);
  const std::string cmd = argc >= 2 ? argv[1] : "";
  if (cmd == "bandwidth" && argc >= 3) {
    auto [read, copy] = bandwidth(std::stoi(argv[2]));
    std::printf("threads=%s read_gbs=%.2f memcpy_gbs=%.2f\n", argv[2], read, copy);
    return 0;
  }
  if (cmd == "run" && argc >= 4) return run(argv[2], std::stoi(argv[3]));
  if (cmd == "profile" && argc >= 4) return profile(argv[2], std::stoi(argv[3]));
  if (cmd == "blas") {
    std::printf("%s\n", blas::summary().c_str());
    return 0;
  }
  std::fprintf(stderr, "usage: %s bandwidth THREADS | run DIR THREADS | profile DIR THREADS | blas\n", argv[0]);
  return 2;
}
