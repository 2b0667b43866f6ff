// Helpers shared by the CLI tests: a copy of the stories260K model directory whose files a
// test can break, and the checks every error exit must pass.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>

#include "support/paths.h"

namespace pizza::test {

inline std::string stories_dir() { return shared("models/stories260K").string(); }

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

}  // namespace pizza::test
