// Gradient attribution benchmark: PIZZA-structured reference algorithm vs pizza's batched
// algorithm on the same model, prompt and outputs, measured side by side in one run.
//   bench_engine_gradient MODEL_DIR [threads] [repetitions, default 5]
// Prints both times, their ratio, the attribution phase's achieved GFLOP/s (matmul FLOPs of
// the forward + input-only backward actually run), and this machine's sgemm GFLOP/s; for
// context also the rate at which the replicate-the-sequence formulation's work gets done, and
// the time of the work PIZZA itself does per generated token; and AttnLRP (the same fast
// algorithm under relevance rules, logit target) next to saliency, interleaved with it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "attribution/gradient.h"
#include "blas/blas.h"
#include "engine/local.h"
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

// What PIZZA itself computes per generated token, for context (not a pizza algorithm): the
// redundant no-grad forward inside generate(), a forward with autograd that projects every
// position onto the vocabulary, and a backward that also fills every weight's gradient.
void pizza_step_work(Transformer& model, const std::vector<int64_t>& prompt, const std::vector<int64_t>& outputs,
                     const Target& target) {
  std::vector<int64_t> seq = prompt;
  for (auto& p : model.parameters()) p.requires_grad_(true);
  for (size_t t = 0; t < outputs.size(); ++t) {
    auto ids = torch::tensor(seq, torch::kLong).view({1, -1});
    {
      torch::NoGradGuard ng;
      model.forward(model.embed(ids));
    }
    auto embeds = model.embed(ids);
    embeds.retain_grad();
    auto logits = model.forward(embeds);  // [1, L, V]
    const auto L = static_cast<int64_t>(seq.size());
    target.fn(logits, torch::tensor({L - 1}), torch::tensor({outputs[t]})).sum().backward();
    for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
    seq.push_back(outputs[t]);
  }
  for (auto& p : model.parameters()) p.requires_grad_(false);
}

double seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [threads] [repetitions]\n", argv[0]);
    return 2;
  }
  blas::maybe_reexec_with_best_core(argc, argv);
  RuntimeOptions ro;
  if (argc > 2) ro.threads = std::stoi(argv[2]);
  const int reps = argc > 3 ? std::max(1, std::stoi(argv[3])) : 5;
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
  req.threads = rt.threads;  // as pizza local: the chunk's rows split across the threads

  // Best of `reps` interleaved runs of each: this machine's neighbours come and go, and the
  // minimum is the time the work itself takes. Interleaving exposes both to the same drift.
  auto time_one = [&](GradientAlgorithm a) {
    req.algorithm = a;
    return seconds([&] { attribute_gradients(lm->model(), req); });
  };
  GradientRequest lrp = req;
  lrp.method = find_gradient_method("attnlrp");
  lrp.target = &find_target(lrp.method->default_target);
  lrp.algorithm = GradientAlgorithm::fast;
  auto time_lrp = [&] { return seconds([&] { attribute_gradients(lm->model(), lrp); }); };
  time_one(GradientAlgorithm::reference);  // warm-up (allocator, threads)
  time_one(GradientAlgorithm::fast);
  time_lrp();
  double t_ref = 1e300, t_fast = 1e300, t_lrp = 1e300;
  for (int i = 0; i < reps; ++i) {
    t_ref = std::min(t_ref, time_one(GradientAlgorithm::reference));
    t_fast = std::min(t_fast, time_one(GradientAlgorithm::fast));
    t_lrp = std::min(t_lrp, time_lrp());
  }
  const double t_pizza = seconds([&] { pizza_step_work(const_cast<Transformer&>(lm->model()), prompt, outputs, *req.target); });

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
  std::printf("best of %d interleaved runs each\n", reps);
  std::printf("reference (PIZZA per-row loop):          %8.3f s\n", t_ref);
  std::printf("fast (one forward, vectorised backward): %8.3f s\n", t_fast);
  std::printf("ratio reference/fast:                    %8.2f  (goal >= 4)\n", t_ref / t_fast);
  std::printf("attnlrp/logit (fast):                    %8.3f s\n", t_lrp);
  std::printf("ratio attnlrp/saliency (fast):           %8.2f  (goal ~1: one backward per row each)\n", t_lrp / t_fast);
  std::printf("PIZZA's own per-token work (one run):     %8.3f s  (%.1fx fast; full-vocabulary logits at every\n"
              "  position, weight gradients, generate()'s extra forward: what the reference leaves out)\n",
              t_pizza, t_pizza / t_fast);
  std::printf("attribution phase:                       %8.1f GFLOP/s\n", fast_flops / t_fast / 1e9);
  std::printf("machine sgemm (n=1024):                  %8.1f GFLOP/s\n", gemm);
  std::printf("attribution / sgemm:                     %8.1f %%  (goal >= 30%%; FLOPs executed)\n", 100 * fast_flops / t_fast / 1e9 / gemm);
  std::printf("replicated-copies work / time / sgemm:   %8.1f %%  (the %.0f GFLOP N copies would execute)\n",
              100 * replicated_flops / t_fast / 1e9 / gemm, replicated_flops / 1e9);

  // Long prompts (#16 item 4): the fast algorithm's work per row should stay one input-only
  // backward over the sequence. Rows teacher-forced after prompts of 512 tokens (16 rows) and
  // 2048 tokens (4 rows: a rate, and 16 would take a quarter of an hour on 2 cores), when the
  // model's context allows, one run each, within the default memory budget (engine/local.h),
  // which may split the rows over several backward passes.
  for (int64_t len : {512, 2048}) {
    if (len + 16 > cfg.max_position_embeddings) {
      std::printf("%lld-token prompt: skipped (context %lld)\n", static_cast<long long>(len),
                  static_cast<long long>(cfg.max_position_embeddings));
      continue;
    }
    GradientRequest lr = req;
    lr.algorithm = GradientAlgorithm::fast;
    lr.prompt = {1};
    for (int64_t i = 1; i < len; ++i) lr.prompt.push_back(1000 + (37 * i) % 30000);
    const int64_t rows = len > 1024 ? 4 : 16;
    lr.outputs.assign(static_cast<size_t>(rows), 0);
    for (size_t i = 0; i < lr.outputs.size(); ++i) lr.outputs[i] = 500 + 11 * static_cast<int64_t>(i);
    lr.max_memory = memory_budget(*lm, std::nullopt);
    GradientAttribution ga;
    const double t = seconds([&] { ga = attribute_gradients(lm->model(), lr); });
    const double Ll = static_cast<double>(len + rows - 1);
    const double flops = static_cast<double>(1 + rows) * layer_flops(cfg, Ll, Ll / 2) + 2 * vocab_flops(cfg, static_cast<double>(rows));
    std::printf("%4lld-token prompt, %2lld rows (%lld per backward): %8.3f s, %6.1f GFLOP/s (%.1f %% of sgemm)\n",
                static_cast<long long>(len), static_cast<long long>(rows), static_cast<long long>(ga.rows_per_pass), t, flops / t / 1e9,
                100 * flops / t / 1e9 / gemm);
    // PIZZA_BENCH_PROFILE=FILE: one row after this prompt again under libtorch's profiler (a
    // Chrome trace; scripts/bench/profile_ops.py sums it by operator), to see where the time goes.
    if (const char* trace = std::getenv("PIZZA_BENCH_PROFILE"); trace != nullptr && len == 2048) {
      lr.outputs.resize(1);
      torch::autograd::profiler::RecordProfile guard(trace);
      attribute_gradients(lm->model(), lr);
    }
  }
  return 0;
}
