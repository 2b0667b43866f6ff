// Helpers shared by the CLI tests: a copy of the stories260K model directory whose files a
// test can break, and the checks every error exit must pass.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>

#include "support/paths.h"
#include "util/json_writer.h"

namespace pizza::test {

inline std::string stories_dir() { return shared("models/stories260K").string(); }

// FILE: the seven one-line prompts the shard tests split three ways (records 1 and 4 in shard 1/3).
inline void write_shard_prompts(const std::filesystem::path& file) {
  std::string prompts;
  for (const char* p : {"Lily saw", "Tom liked", "The cat", "A bird sang", "Ben ran", "The sun was", "Mom said"})
    prompts += std::string(p) + "\n";
  spit(file, prompts);
}

// A temporary model directory with stories260K's config and tokenizer files (and its weights
// when `with_weights`), for tests that then replace one file with a broken one.
class ModelCopy {
 public:
  explicit ModelCopy(bool with_weights = true) {
    const auto src = shared("models/stories260K");
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
                          "special_tokens_map.json"})
      std::filesystem::copy_file(src / f, dir_ / f);
    if (with_weights) std::filesystem::copy_file(src / "model.safetensors", dir_ / "model.safetensors");
  }
  std::filesystem::path path() const { return dir_.path(); }
  std::filesystem::path operator/(const std::string& rel) const { return dir_ / rel; }

 private:
  TempDir dir_;
};

// The layout of `cmake --install build --prefix P` in a temporary P: P/bin/pizza (a copy of the
// built front end) and an empty P/lib/pizza for the modules and engine a test puts there.
class InstalledLayout {
 public:
  InstalledLayout() {
    std::filesystem::create_directories(prefix_ / "bin");
    std::filesystem::create_directories(lib());
    std::filesystem::copy_file(PIZZA_BINARY, program());
  }
  std::filesystem::path program() const { return prefix_ / "bin/pizza"; }
  std::filesystem::path lib() const { return prefix_ / "lib/pizza"; }

 private:
  TempDir prefix_;
};

// An input error as the user sees it: exit 1, nothing on stdout, exactly one stderr line
// "pizza: error: ..." containing each of `fragments` (the file name and the problem), and no
// libtorch backtrace.
inline void check_input_error(const CliResult& r, const std::vector<std::string>& fragments) {
  INFO("stderr: " << r.err);
  INFO("stdout: " << r.out);
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("pizza: error: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.back() == '\n');
  CHECK(r.err.find("Exception raised from") == std::string::npos);
  CHECK(r.err.find("frame #") == std::string::npos);
  for (const auto& f : fragments) CHECK(r.err.find(f) != std::string::npos);
}

// A usage error: exit 2, nothing on stdout, stderr starting "pizza: error:".
inline void check_usage_error(const CliResult& r, const std::string& fragment) {
  INFO("stderr: " << r.err);
  INFO("stdout: " << r.out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("pizza: error: ", 0) == 0);
  CHECK(r.err.find(fragment) != std::string::npos);
}

// A chat completion as an OpenAI-compatible server answers it with logprobs: one choice whose
// message and single token are `text` (log-probability -0.5, its own only alternative).
// `fingerprint`: a system_fingerprint field when given.
inline std::string echo_chat_completion(std::string_view text, std::string_view model,
                                        std::optional<std::string_view> fingerprint = std::nullopt) {
  JsonWriter w;
  w.begin_object().field("model", model);
  if (fingerprint) w.field("system_fingerprint", *fingerprint);
  w.key("choices").begin_array().begin_object().field("index", 0).field("finish_reason", "length");
  w.key("message").begin_object().field("role", "assistant").field("content", text).end_object();
  w.key("logprobs").begin_object().key("content").begin_array().begin_object().field("token", text);
  w.field("logprob", -0.5).key("top_logprobs").begin_array().begin_object().field("token", text);
  w.field("logprob", -0.5).end_object().end_array().end_object().end_array().end_object();
  w.end_object().end_array().end_object();
  return w.take();
}

}  // namespace pizza::test
