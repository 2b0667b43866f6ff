// --no-mmap: weights read into memory at load, so a model file truncated or rewritten in place
// while `pizza serve` runs changes nothing (mapped, the same truncation would end the server
// with SIGBUS at the next touch of an evicted page, and a rewrite would change its answers).
#include <torch/torch.h>  // before Catch: see serve_support.h

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "cli/cli_helpers.h"
#include "serve_support.h"
#include "support/subprocess.h"

namespace fs = std::filesystem;

namespace {

// Overwrites every weight byte after the safetensors header with a different value, in place.
void scramble_in_place(const fs::path& file) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header = 0;
  f.read(reinterpret_cast<char*>(&header), 8);
  const auto size = fs::file_size(file);
  std::string junk(size - 8 - header, '\x3f');  // every float becomes ~0.75
  f.seekp(static_cast<std::streamoff>(8 + header));
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

torch::Tensor logits(const pizza::LanguageModel& lm) {
  torch::NoGradGuard ng;
  return lm.model().forward(lm.model().embed(torch::tensor({1, 403, 407, 261, 378}, torch::kLong).view({1, -1}))).clone();
}

}  // namespace

TEST_CASE("a model loaded with --no-mmap keeps its answers when its file is rewritten in place and a mapped one does not") {
  const pizza::test::ModelCopy m;  // a private copy of stories260K the test may damage
  pizza::RuntimeOptions mapped{"cpu", "float32", 1, true}, copied{"cpu", "float32", 1, false};
  auto a = pizza::LanguageModel::load(m.path(), pizza::apply_runtime(mapped));
  auto b = pizza::LanguageModel::load(m.path(), pizza::apply_runtime(copied));
  const auto before = logits(*b);
  REQUIRE(torch::equal(logits(*a), before));
  scramble_in_place(m / "model.safetensors");
  CHECK(torch::equal(logits(*b), before));
  // The control: float32 weights are zero-copy views of the mapping, so the rewrite reaches them.
  CHECK_FALSE(torch::equal(logits(*a), before));
}

TEST_CASE("pizza serve --no-mmap answers the same after its model file is truncated") {
  const pizza::test::ModelCopy m;
  pizza::test::ListeningProcess serve({PIZZA_BINARY, "serve", "--model", m.path().string(), "--port", "0", "--threads", "1",
                                       "--served-model-name", "m", "--no-mmap"});
  const std::string request =
      R"({"model": "m", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0, "logprobs": 2})";
  const auto first = pizza::test::post(serve.port(), "/v1/completions", request);
  REQUIRE(first.status == 200);
  fs::resize_file(m / "model.safetensors", 0);
  // The truncation dropped the file's pages from the page cache: a mapping would now fault.
  const auto second = pizza::test::post(serve.port(), "/v1/completions", request);
  REQUIRE(second.status == 200);
  auto choices = [](const std::string& body) { return body.substr(body.find("\"choices\"")); };
  CHECK(choices(second.body) == choices(first.body));
  CHECK_FALSE(serve.process().exited());
}
