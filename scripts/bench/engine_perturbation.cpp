// Benchmark of the local perturbation backend (run by local_perturbation.sh).
//   bench_engine_perturbation make-checkpoint DIR   random-weight Llama, 135M shape
//   bench_engine_perturbation run DIR               occlusion timings
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/local_perturbation.h"
#include "util/json_writer.h"

namespace {

using namespace pizza;

// Writes a safetensors file of random float32 tensors (N(0, 0.02), norms at 1) and a Llama
// config.json: hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocab 32000.
void make_checkpoint(const std::filesystem::path& dir) {
  const int64_t H = 576, L = 30, heads = 9, kv = 3, I = 1536, V = 32000, hd = H / heads;
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{{"model.embed_tokens.weight", {V, H}},
                                                                   {"model.norm.weight", {H}}};
  for (int64_t l = 0; l < L; ++l) {
    const auto p = "model.layers." + std::to_string(l) + ".";
    shapes.push_back({p + "input_layernorm.weight", {H}});
    shapes.push_back({p + "post_attention_layernorm.weight", {H}});
    shapes.push_back({p + "self_attn.q_proj.weight", {heads * hd, H}});
    shapes.push_back({p + "self_attn.k_proj.weight", {kv * hd, H}});
    shapes.push_back({p + "self_attn.v_proj.weight", {kv * hd, H}});
    shapes.push_back({p + "self_attn.o_proj.weight", {H, heads * hd}});
    shapes.push_back({p + "mlp.gate_proj.weight", {I, H}});
    shapes.push_back({p + "mlp.up_proj.weight", {I, H}});
    shapes.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  torch::manual_seed(0);
  JsonWriter header;
  header.begin_object();
  std::vector<torch::Tensor> data;
  int64_t offset = 0;
  for (const auto& [name, shape] : shapes) {
    auto t = shape.size() == 1 ? torch::ones(shape) : torch::randn(shape) * 0.02;
    const int64_t bytes = t.numel() * 4;
    header.key(name).begin_object().field("dtype", "F32").key("shape").begin_array();
    for (auto d : shape) header.value(d);
    header.end_array().key("data_offsets").begin_array().value(offset).value(offset + bytes).end_array().end_object();
    offset += bytes;
    data.push_back(t.contiguous());
  }
  header.end_object();
  std::string h = header.take();
  while (h.size() % 8) h += ' ';
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& t : data) f.write(static_cast<const char*>(t.data_ptr()), t.numel() * 4);
  std::ofstream(dir / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
 "num_key_value_heads": 3, "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 1,
 "eos_token_id": 2, "torch_dtype": "float32"})";
}

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
    make_checkpoint(argv[2]);
    return 0;
  }
  if (argc >= 3 && std::string(argv[1]) == "run") return run(argv[2], argc >= 4 ? argv[3] : "cpu");
  std::fprintf(stderr, "usage: %s make-checkpoint DIR | run DIR [cpu|cuda]\n", argv[0]);
  return 2;
}
