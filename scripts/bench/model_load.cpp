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
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "util/json_writer.h"

namespace {

using namespace pizza;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632, vocab 32000, untied, BF16
// N(0, 0.02) weights (norms at 1).
void make_checkpoint(const std::filesystem::path& dir) {
  const int64_t H = 2048, L = 22, heads = 32, kv = 4, I = 5632, V = 32000, hd = H / heads;
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{
      {"model.embed_tokens.weight", {V, H}}, {"model.norm.weight", {H}}, {"lm_head.weight", {V, H}}};
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
  JsonWriter header;
  header.begin_object();
  int64_t offset = 0;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    header.key(name).begin_object().field("dtype", "BF16").key("shape").begin_array();
    for (auto d : shape) header.value(d);
    header.end_array().key("data_offsets").begin_array().value(offset).value(offset + 2 * n).end_array().end_object();
    offset += 2 * n;
  }
  header.end_object();
  std::string h = header.take();
  while (h.size() % 8) h += ' ';
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const uint64_t hn = h.size();
  f.write(reinterpret_cast<const char*>(&hn), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  torch::manual_seed(0);
  for (const auto& [name, shape] : shapes) {
    auto t = (shape.size() == 1 ? torch::ones(shape) : torch::randn(shape) * 0.02).to(torch::kBFloat16).contiguous();
    f.write(static_cast<const char*>(t.data_ptr()), t.numel() * 2);
  }
  std::ofstream(dir / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
 "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1,
 "eos_token_id": 2, "torch_dtype": "bfloat16"})";
}

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
    make_checkpoint(argv[2]);
    return 0;
  }
  if (cmd == "run" && argc >= 4) return run(argv[2], std::stoi(argv[3]));
  std::fprintf(stderr, "usage: %s make-checkpoint DIR | run DIR THREADS\n", argv[0]);
  return 2;
}
