// pizza's sentencepiece module (libpizza_sentencepiece.so) is found wherever pizza is: beside
// the program, in <prefix>/lib/pizza for an installed bin/pizza, or in $PIZZA_MODULE_DIR; a
// missing or broken module is a one-line error, never a crash.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>

#include "cli/cli_helpers.h"
#include "support/subprocess.h"

using namespace pizza::test;
namespace fs = std::filesystem;

namespace {

const fs::path kModule = "libpizza_sentencepiece.so";

fs::path built_module() {
  const fs::path m = fs::path(PIZZA_BINARY).parent_path() / kModule;
  REQUIRE(fs::exists(m));
  return m;
}

// Runs a pizza program at `exe` (stderr captured); returns {exit code, stderr}.
std::pair<int, std::string> run_at(const fs::path& exe, std::vector<std::string> args) {
  args.insert(args.begin(), exe.string());
  Subprocess p(args);
  const int rc = p.wait();
  return {rc, p.read_to_end(std::chrono::seconds(10))};
}

}  // namespace

TEST_CASE("cli: a missing sentencepiece module is a one-line error naming it and where pizza looked", "[cli][module]") {
  TempDir empty;
  auto r = run_cli({"tokenize", "--model", stories_dir(), "-p", "Once upon a time"}, "",
                   {"PIZZA_MODULE_DIR=" + empty.path().string()});
  check_input_error(r, {kModule.string(), "was not found", empty.path().string(), "PIZZA_MODULE_DIR"});
}

TEST_CASE("cli: a broken sentencepiece module is a one-line error, not a crash", "[cli][module]") {
  TempDir dir;
  std::ofstream(dir / kModule.string()) << "not a shared library";
  auto r = run_cli({"tokenize", "--model", stories_dir(), "-p", "Once upon a time"}, "",
                   {"PIZZA_MODULE_DIR=" + dir.path().string()});
  check_input_error(r, {(dir / kModule.string()).string(), "could not be loaded"});
}

TEST_CASE("cli: an installed pizza finds its module in <prefix>/lib/pizza", "[cli][module]") {
  const InstalledLayout installed;
  const fs::path exe = installed.program();
  const std::vector<std::string> args{"tokenize", "--model", stories_dir(), "-p", "Once upon a time"};

  // A broken module there is reported from there: that directory is searched before the build
  // tree (whose module would otherwise be found).
  std::ofstream(installed.lib() / kModule.string()) << "broken";
  auto [rc_broken, err_broken] = run_at(exe, args);
  INFO("stderr: " << err_broken);
  CHECK(rc_broken == 1);
  CHECK(err_broken.find((installed.lib() / kModule.string()).string()) != std::string::npos);

  fs::copy_file(built_module(), installed.lib() / kModule, fs::copy_options::overwrite_existing);
  auto [rc, err] = run_at(exe, args);
  INFO("stderr: " << err);
  CHECK(rc == 0);
  CHECK(err.empty());
}
