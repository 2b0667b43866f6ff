// Family selection and checkpoint-naming variants beyond the fixtures themselves.
#include <cstring>
#include <fstream>

#include "support_torch/reference.h"
#include "util/error.h"
#include "util/file.h"
// libtorch pulls in glog, whose CHECK() aborts the process instead of reporting to Catch;
// drop it before Catch defines its own.
#undef CHECK
#include <catch2/catch.hpp>

#include "support/paths.h"

using namespace pizza;

namespace {

// s with every occurrence of `from` replaced by `to`; *count gets the number replaced.
std::string replaced(const std::string& s, const std::string& from, const std::string& to, size_t* count) {
  std::string out;
  size_t pos = 0;
  *count = 0;
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, pos)) {
    out.append(s, pos, at - pos);
    out.append(to);
    pos = at + from.size();
    ++*count;
  }
  out.append(s, pos);
  return out;
}

void write_text(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary).write(s.data(), static_cast<std::streamsize>(s.size()));
}

// A copy of a fixture directory's config.json with `from` replaced by `to`, weights alongside.
std::filesystem::path edited_fixture(const test::TempDir& dir, const std::string& fixture, const std::string& from,
                                     const std::string& to) {
  auto src = test::shared("fixtures/" + fixture);
  size_t count = 0;
  auto config = replaced(read_file(src / "config.json"), from, to, &count);
  REQUIRE(count == 1);
  write_text(dir / "config.json", config);
  std::filesystem::copy_file(src / "model.safetensors", dir / "model.safetensors");
  return dir.path();
}

std::string load_error(const std::filesystem::path& dir) {
  try {
    LanguageModel::load_weights(dir, test::cpu_runtime());
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("expected an InputError");
  return {};
}

}  // namespace

TEST_CASE("families: an unsupported model_type is an InputError listing every supported one",
          "[model][families][bad-input]") {
  test::TempDir dir;
  auto err = load_error(edited_fixture(dir, "llama", R"("model_type": "llama")", R"("model_type": "bert")"));
  CHECK(err.find("unsupported model_type 'bert'") != std::string::npos);
  CHECK(err.find("config.json") != std::string::npos);
  // Every supported family, in the order the docs list them (the fixtures test proves each).
  CHECK(err.find("(supported: llama, mistral, qwen2, granite, gemma, gemma2, gpt2, gpt_neox, phi3, phi, starcoder2, "
                 "stablelm, olmo, olmo2, cohere, mixtral, qwen2_moe)") != std::string::npos);
}

TEST_CASE("families: options pizza does not implement are refused, not ignored", "[model][families][bad-input]") {
  struct Case {
    const char* fixture;
    const char* from;
    const char* to;
    const char* field;
  };
  const Case cases[] = {
      {"phi", R"("qk_layernorm": false)", R"("qk_layernorm": true)", "qk_layernorm"},
      {"stablelm", R"("qk_layernorm": false)", R"("qk_layernorm": true)", "qk_layernorm"},
      {"cohere", R"("use_qk_norm": false)", R"("use_qk_norm": true)", "use_qk_norm"},
      {"gpt2", R"("scale_attn_by_inverse_layer_idx": false)", R"("scale_attn_by_inverse_layer_idx": true)",
       "scale_attn_by_inverse_layer_idx"},
      {"phi3", R"("rope_scaling": null)", R"("rope_scaling": {"type": "longrope"})", "rope_scaling"},
  };
  for (const auto& c : cases) {
    INFO(c.fixture << ": " << c.to);
    test::TempDir dir;
    auto err = load_error(edited_fixture(dir, c.fixture, c.from, c.to));
    CHECK(err.find(std::string("field '") + c.field + "'") != std::string::npos);
  }
}

TEST_CASE("families: GPT-2 loads hub-style bare key names (wte, h.0..., ln_f)", "[model][families]") {
  // The fixture's safetensors with "transformer." dropped from every key: the header is JSON
  // and tensor offsets are relative to the data section, so only the header changes.
  auto src = test::shared("fixtures/gpt2");
  auto bytes = read_file(src / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  size_t renamed = 0;
  auto header = replaced(bytes.substr(8, header_len), "\"transformer.", "\"", &renamed);
  REQUIRE(renamed == 28);  // every tensor of the fixture (SUMMARY.txt: tensors=28)
  const uint64_t new_len = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &new_len, 8);
  out.append(header);
  out.append(bytes, 8 + header_len);

  test::TempDir dir;
  write_text(dir / "model.safetensors", out);
  std::filesystem::copy_file(src / "config.json", dir / "config.json");
  auto lm = LanguageModel::load_weights(dir.path(), test::cpu_runtime());
  test::ReferenceTensors ref(src / "reference.safetensors");
  torch::NoGradGuard no_grad;
  auto logits = lm->model().forward(lm->model().embed(ref["input_ids"]));
  CHECK(test::worst_excess(logits, ref["logits"], 1e-4, 1e-4) <= 0);  // fixtures README's float32 tolerance (observed gaps <= 4.1e-6)
}
