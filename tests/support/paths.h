// Test support: locating ../shared reference data (missing data FAILS the test, never skips),
// running the pizza CLI binary as a user would, and temporary directories and files.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <string_view>
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

// A whole file's bytes; "" when it cannot be read (a test may look before the file exists).
std::string slurp(const std::filesystem::path& p);

// Writes `data` to `p` (binary, replacing it), creating its parent directories first.
void spit(const std::filesystem::path& p, std::string_view data);

// The lines of `text`, without their '\n' (a last line without one counts too).
std::vector<std::string> lines_of(const std::string& text);

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs a shell command line (popen) and captures its output.
ProcessResult run_command(const std::string& command_line);

// Single-quotes a string for /bin/sh.
std::string shell_quote(std::string_view s);

// Validates a JSON file against a committed schema (a path under the source tree) with Debian's
// python3-jsonschema, an implementation independent of ours. exit_code 0 when valid. A file that
// is not one JSON document is read as JSON Lines and every record is validated (the failing
// line is named); the output ends "valid: N" with the number of documents checked.
ProcessResult validate_json_schema(const std::filesystem::path& schema, const std::filesystem::path& doc);

// Loads an HTML file in headless Chromium (fresh profile, no network services) and returns the
// DOM after its scripts ran; REQUIREs Debian's chromium. `fragment`: "#..." appended to the URL.
std::string chromium_dom(const std::filesystem::path& html, const std::string& fragment = "");

}  // namespace pizza::test
