// llama2.c legacy .bin checkpoints: the stories260K model in llama2.c's format must behave
// exactly like the same model in Hugging Face layout, and reproduce llama2.c's own output.
#include <cstring>
#include <fstream>

#include "checkpoint/llama2c.h"
#include "model/generate.h"
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

std::filesystem::path stories_bin() { return test::shared("models/stories260K-llama2c/stories260K.bin"); }

torch::Tensor logits_of(const LanguageModel& lm, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  auto t = torch::tensor(ids, torch::kLong).unsqueeze(0);
  return lm.model().forward(lm.model().embed(t))[0];
}

// The shared bytes of stories260K.bin with the header's vocab_size replaced and `tail` appended.
std::string rewritten_bin(int32_t vocab_size, const std::string& tail) {
  auto bytes = read_file(stories_bin());
  std::memcpy(bytes.data() + 5 * sizeof(int32_t), &vocab_size, sizeof(vocab_size));
  return bytes + tail;
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("llama2.c: greedy decoding from BOS reproduces run.c's 200-token story", "[model][llama2c]") {
  auto lm = LanguageModel::load(stories_bin(), test::cpu_runtime(),
                                test::shared("models/stories260K-llama2c/tok512.model"));
  REQUIRE(lm->config().model_type == "llama");
  REQUIRE(lm->config().vocab_size == 512);
  const std::vector<int64_t> prompt{1};  // run.c with an empty prompt starts from BOS alone
  GenerateOptions go;
  go.max_new_tokens = 200;  // run -n 200: one new token per step
  auto gen = greedy_generate(lm->model(), {prompt}, go).at(0);
  REQUIRE(gen.tokens.size() == 200);
  auto expected = read_file(test::shared("reference/stories260K/expected_greedy_t0_n200.txt"));
  CHECK(decode_continuation(lm->tokenizer(), prompt, gen.tokens) == expected);
}

TEST_CASE("llama2.c: logits equal the Hugging Face-layout conversion of the same model", "[model][llama2c]") {
  // "Once upon a time, there was a little girl named Lily." with BOS (reference_outputs.json).
  const std::vector<int64_t> ids{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
  // float64: the same weights through two loaders must give the same logits up to rounding
  // (~1e-14 on logits of magnitude ~10), so 1e-10 catches any weight permuted or misread.
  // float32: the loaders may lay weights out differently (another GEMM path), so summation
  // orders differ: 1e-4 absolute is ~50 ulps of a logit of magnitude 10-16 (observed ~1e-6).
  for (auto [dtype, atol] : {std::pair<const char*, double>{"float64", 1e-10}, {"float32", 1e-4}}) {
    INFO(dtype);
    auto bin = LanguageModel::load_weights(stories_bin(), test::cpu_runtime(dtype));
    auto hf = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime(dtype));
    CHECK(test::worst_excess(logits_of(*bin, ids), logits_of(*hf, ids), atol, 0) <= 0);
  }
}

TEST_CASE("llama2.c: the tokenizer is found beside the .bin when not given", "[model][llama2c]") {
  auto lm = LanguageModel::load(stories_bin(), test::cpu_runtime());
  CHECK(lm->tokenizer().describe().find("tok512.model") != std::string::npos);

  test::TempDir dir;  // a .bin alone: the error says how to supply one
  write_bytes(dir / "model.bin", read_file(stories_bin()));
  try {
    LanguageModel::load(dir / "model.bin", test::cpu_runtime());
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("--tokenizer") != std::string::npos);
    CHECK(std::string(e.what()).find("model.bin") != std::string::npos);
  }
}

TEST_CASE("llama2.c: a negative vocab_size reads the unshared classifier at the end", "[model][llama2c]") {
  // Same model, but flagged unshared with wcls = 2 x the embedding table: the logits are the
  // final hidden state times wcls, so they must come out exactly doubled.
  // float64, so that "exactly" is testable: the classifier product differs only in layout.
  auto shared_lm = LanguageModel::load_weights(stories_bin(), test::cpu_runtime("float64"));
  const auto H = checkpoint::Llama2cFile(stories_bin()).header();
  auto bytes = read_file(stories_bin());
  std::vector<float> table(static_cast<size_t>(H.vocab() * H.dim));
  std::memcpy(table.data(), bytes.data() + 7 * sizeof(int32_t), table.size() * sizeof(float));
  for (auto& x : table) x *= 2.0f;
  std::string wcls(reinterpret_cast<const char*>(table.data()), table.size() * sizeof(float));

  test::TempDir dir;
  write_bytes(dir / "unshared.bin", rewritten_bin(-H.vocab_size, wcls));
  auto unshared = LanguageModel::load_weights(dir / "unshared.bin", test::cpu_runtime("float64"));
  CHECK_FALSE(unshared->config().tie_word_embeddings);
  const std::vector<int64_t> ids{1, 403, 407, 261, 378};
  // float64 rounding ~1e-14 on logits ~10; reading the table instead of wcls would be off by 2x.
  CHECK(test::worst_excess(logits_of(*unshared, ids), 2 * logits_of(*shared_lm, ids), 1e-10, 0) <= 0);
}

TEST_CASE("llama2.c: a file whose size disagrees with its header is an InputError naming it",
          "[model][llama2c][bad-input]") {
  test::TempDir dir;
  auto bytes = read_file(stories_bin());
  const std::pair<const char*, std::string> cases[] = {
      {"truncated.bin", bytes.substr(0, bytes.size() - 4)},
      {"extra.bin", bytes + std::string(4, '\0')},
      {"header_only.bin", bytes.substr(0, 20)},
      // vocab_size negated without the classifier it promises
      {"no_wcls.bin", rewritten_bin(-512, "")},
  };
  for (const auto& [name, content] : cases) {
    INFO(name);
    write_bytes(dir / name, content);
    try {
      LanguageModel::load_weights(dir / name, test::cpu_runtime());
      FAIL("expected an InputError");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find((dir / name).string()) != std::string::npos);
    }
  }
}
