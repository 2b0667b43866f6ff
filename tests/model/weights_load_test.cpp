// Weight loading: bfloat16 checkpoints are widened to float32 exactly, with any thread count,
// through every layout the loader rearranges (fused q|k|v and gate|up stacks, GPT-2's transposed
// Conv1D, GPT-NeoX's per-head fused qkv, Phi-3's fused projections, a tied lm_head).
#include <cstring>

#include "checkpoint_writer.h"
#include "model/model.h"
#include "support_torch/reference.h"
// libtorch pulls in glog, whose CHECK() aborts the process instead of reporting to Catch;
// drop it before Catch defines its own.
#undef CHECK
#include <catch2/catch.hpp>

#include "support/paths.h"

using namespace pizza;

namespace {

// DIR: the tensors as model.safetensors beside a copy of the fixture's config.json.
void write_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& fixture,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixture / "config.json", dir / "config.json");
  test::write_safetensors(dir / "model.safetensors", tensors);
}

// Every parameter of a and b, by name, bit for bit.
void check_same_parameters(const LanguageModel& a, const LanguageModel& b) {
  auto pa = a.model().named_parameters(), pb = b.model().named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto& p : pa) {
    INFO("parameter " << p.key());
    const auto& other = pb[p.key()];
    REQUIRE(p.value().scalar_type() == torch::kFloat32);
    REQUIRE(p.value().sizes() == other.sizes());
    CHECK(std::memcmp(p.value().contiguous().data_ptr(), other.contiguous().data_ptr(),
                      static_cast<size_t>(p.value().numel()) * 4) == 0);
  }
}

}  // namespace

TEST_CASE("bfloat16 weights load as their exact float32 widening with 1 and 2 threads", "[model][load]") {
  for (const char* family : {"llama", "gpt2", "gpt_neox", "phi3", "gemma"}) {
    INFO("fixture " << family);
    const auto fixture = test::shared(std::string("fixtures/") + family);
    test::ReferenceTensors ref(fixture / "model.safetensors");
    checkpoint::Checkpoint ck = checkpoint::Checkpoint::open(fixture);
    // The fixture's float32 values rounded down to bfloat16 words (their top halves), and the
    // reference widening of those words, computed here by hand: word << 16.
    std::vector<std::pair<std::string, torch::Tensor>> bf16, widened;
    for (const auto& name : ck.names()) {
      auto t = ref[name].to(torch::kFloat32).contiguous();
      auto words = torch::empty(t.sizes(), torch::kInt16);
      auto wide = torch::empty(t.sizes(), torch::kFloat32);
      const auto* src = static_cast<const uint32_t*>(t.data_ptr());
      auto* w = static_cast<uint16_t*>(words.data_ptr());
      auto* out = static_cast<uint32_t*>(wide.data_ptr());
      for (int64_t i = 0; i < t.numel(); ++i) {
        w[i] = static_cast<uint16_t>(src[i] >> 16);
        out[i] = static_cast<uint32_t>(w[i]) << 16;
      }
      bf16.emplace_back(name, words.view(torch::kBFloat16));
      widened.emplace_back(name, wide);
    }
    test::TempDir tmp;
    write_checkpoint(tmp.path() / "bf16", fixture, bf16);
    write_checkpoint(tmp.path() / "f32", fixture, widened);
    auto expected = LanguageModel::load_weights(tmp.path() / "f32", apply_runtime({"cpu", "float32", 1}));
    for (int threads : {1, 2}) {
      INFO("threads " << threads);
      for (bool mapped : {true, false}) {
        INFO("mapped " << mapped);
        auto lm = LanguageModel::load_weights(tmp.path() / "bf16", apply_runtime({"cpu", "float32", threads, mapped}));
        check_same_parameters(*lm, *expected);
      }
    }
  }
  apply_runtime({});  // back to the process's default threads
}
