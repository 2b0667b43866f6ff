// Gradient attribution benchmark: PIZZA-structured reference algorithm vs pizza's batched
// algorithm on the same model, prompt and outputs, measured side by side in one run.
//   bench_engine_gradient MODEL_DIR [threads]
// Prints both times, their ratio, the attribution phase's achieved GFLOP/s (matmul FLOPs of
// the forward + input-only backward actually run), and this machine's sgemm GFLOP/s; for
// context also the rate at which the replicate-the-sequence formulation's work gets done.
#include <chrono>
#include <cstdio>
#include <string>

#include "attribution/gradient.h"
#include "blas/blas.h"
#include "model/generate.h"
#include "model/model.h"

using namespace pizza;

namespace {

// Matmul FLOPs of the decoder layers over one sequence copy: `positions` token positions
// whose attention spans `context` keys on average. Input-only backward costs the same again
// (dX = dY W, no weight gradients).
double layer_flops(const ModelConfig& c, double positions, double context) {
  const double D = static_cast<double>(c.hidden_size), hd = static_cast<double>(c.head_dim);
  const double H = static_cast<double>(c.num_heads), KV = static_cast<double>(c.num_kv_heads);
  const double I = static_cast<double>(c.intermediate_size);
  const double per_layer = 2 * (D * H * hd + 2 * D * KV * hd + H * hd * D + 3 * D * I) + 2 * 2 * context * H * hd;
  return positions * static_cast<double>(c.num_layers) * per_layer;
}

// The vocabulary projection at `positions` positions.
double vocab_flops(const ModelConfig& c, double positions) {
  return positions * 2 * static_cast<double>(c.hidden_size) * static_cast<double>(c.vocab_size);
}

double seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [threads]\n", argv[0]);
    return 2;
  }
  blas::maybe_reexec_with_best_core(argc, argv);
  RuntimeOptions ro;
  if (argc > 2) ro.threads = std::stoi(argv[2]);
  auto rt = apply_runtime(ro);
  auto lm = LanguageModel::load_weights(argv[1], rt);
  const auto& cfg = lm->config();

  // A 32-token prompt (BOS + 31 ids) and 16 greedy tokens.
  std::vector<int64_t> prompt{1};
  for (int i = 0; i < 31; ++i) prompt.push_back(1000 + 37 * i);
  GenerateOptions go;
  go.max_new_tokens = 16;
  auto outputs = greedy_generate(lm->model(), {prompt}, go).at(0).tokens;
  const double P = static_cast<double>(prompt.size()), N = static_cast<double>(outputs.size());

  GradientRequest req;
  req.prompt = prompt;
  req.outputs = outputs;
  req.method = find_gradient_method("saliency");
  req.target = &find_target("prob");
  req.max_batch = 16;  // all 16 rows in one chunk: one forward + one backward

  req.algorithm = GradientAlgorithm::reference;
  attribute_gradients(lm->model(), req);  // warm-up (allocator, threads)
  const double t_ref = seconds([&] { attribute_gradients(lm->model(), req); });
  req.algorithm = GradientAlgorithm::fast;
  attribute_gradients(lm->model(), req);
  const double t_fast = seconds([&] { attribute_gradients(lm->model(), req); });

  // Work actually run by the fast algorithm: one forward over the P + N - 1 positions with
  // logits at the N target positions, the backward through the vocabulary projection once,
  // then one vectorised backward through the layers for each of the N rows.
  const double L = P + N - 1;
  const double fast_flops = (1 + N) * layer_flops(cfg, L, L / 2) + 2 * vocab_flops(cfg, N);
  // For comparison only: the work of the replicate-the-sequence formulation (N copies, each a
  // forward and an input-only backward), which the vectorised algorithm does not run.
  const double replicated_flops = 2 * N * (layer_flops(cfg, L, L / 2) + vocab_flops(cfg, 1));
  const double gemm = blas::measure_sgemm_gflops(1024);
  std::printf("model: %s (%lld layers, hidden %lld, vocab %lld), threads %d, BLAS %s\n", argv[1],
              static_cast<long long>(cfg.num_layers), static_cast<long long>(cfg.hidden_size),
              static_cast<long long>(cfg.vocab_size), rt.threads, blas::summary().c_str());
  std::printf("prompt %d tokens, %d generated tokens, saliency/prob\n", static_cast<int>(P), static_cast<int>(N));
  std::printf("reference (PIZZA per-row loop):          %8.3f s\n", t_ref);
  std::printf("fast (one forward, vectorised backward): %8.3f s\n", t_fast);
  std::printf("ratio reference/fast:                    %8.2f  (goal >= 4)\n", t_ref / t_fast);
  std::printf("attribution phase:                       %8.1f GFLOP/s\n", fast_flops / t_fast / 1e9);
  std::printf("machine sgemm (n=1024):                  %8.1f GFLOP/s\n", gemm);
  std::printf("attribution / sgemm:                     %8.1f %%  (goal >= 30%%; FLOPs executed)\n", 100 * fast_flops / t_fast / 1e9 / gemm);
  std::printf("replicated-copies work / time / sgemm:   %8.1f %%  (the %.0f GFLOP N copies would execute)\n",
              100 * replicated_flops / t_fast / 1e9 / gemm, replicated_flops / 1e9);
  return 0;
}
