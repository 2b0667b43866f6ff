// Test support: locating ../shared reference data (missing data FAILS the test, never skips)
// and running the pizza CLI binary as a user would.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace pizza::test {

// Absolute path of ../shared/<rel>; REQUIREs that it exists.
std::filesystem::path shared(const std::string& rel);

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the built pizza binary with args (no shell), optional stdin, and extra environment
// assignments ("NAME=value"). Captures stdout and stderr.
CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_data = "",
                  const std::vector<std::string>& env = {});

// A fresh temporary directory, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

}  // namespace pizza::test
