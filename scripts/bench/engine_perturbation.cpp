// Benchmark of the local perturbation backend (run by local_perturbation.sh).
//   bench_engine_perturbation make-checkpoint DIR   random-weight Llama, 135M shape
//   bench_engine_perturbation run DIR               occlusion timings
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "checkpoint_writer.h"
#include "engine/local_perturbation.h"

namespace {

using namespace pizza;

// A 135M shape (SmolLM-135M's layers with llama2's vocabulary): hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocab
// 32000, tied, float32.
const test::LlamaShape kShape{576, 30, 9, 3, 1536, 32000, true, torch::kFloat32};

double time_run(const LanguageModel& lm, const LocalPerturbationRequest& req, size_t& calls) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_local_perturbation(lm, req);
  for (const auto& [k, v] : r.parameters)
    if (k == "model_calls") calls = std::stoul(v);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const std::filesystem::path& dir, const std::string& device) {
  auto lm = LanguageModel::load(dir, apply_runtime({device, "float32", 0}));
  // 64 words.
  std::string prompt;
  const char* words[] = {"the", "little", "girl", "saw", "a", "big", "red", "ball", "in", "park"};
  for (int i = 0; i < 64; ++i) prompt += (i ? " " : "") + std::string(words[(i * 7) % 10]);
  LocalPerturbationRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 8;
  req.unit.kind = UnitKind::word;
  req.engine.algorithm = perturbation::Algorithm::occlusion;

  size_t tf_calls = 0, fr_calls = 0;
  req.engine.scoring = perturbation::Scoring::teacher_forced;
  req.backend.max_batch = 16;
  time_run(*lm, req, tf_calls);  // warm-up
  const double tf = time_run(*lm, req, tf_calls);
  req.engine.scoring = perturbation::Scoring::free_running;
  req.backend.max_batch = 1;
  const double fr = time_run(*lm, req, fr_calls);
  std::printf("device %s, 64 words, 8 output tokens\n", device.c_str());
  std::printf("teacher-forced batched (max-batch 16): %.3f s (%zu prompts)\n", tf, tf_calls);
  std::printf("free-running one at a time:            %.3f s (%zu prompts)\n", fr, fr_calls);
  std::printf("ratio: %.2f\n", fr / tf);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "make-checkpoint") {
    test::write_random_llama(argv[2], kShape);
    return 0;
  }
  if (argc >= 3 && std::string(argv[1]) == "run") return run(argv[2], argc >= 4 ? argv[3] : "cpu");
  std::fprintf(stderr, "usage: %s make-checkpoint DIR | run DIR [cpu|cuda]\n", argv[0]);
  return 2;
}
