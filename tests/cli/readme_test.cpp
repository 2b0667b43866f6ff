// Every runnable command the README shows (lines of its ```sh blocks that run build/pizza,
// with the printf lines that make their input files) is executed as a user would: from a
// working directory next to ../shared, with build/ and configs/ there. Synopsis lines
// ("pizza local --model M ...") and commands needing a server (curl) are not runnable.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "support/paths.h"

namespace {

// Commands from ```sh blocks, with backslash continuations joined. From the set-up line
// ("scripts/setup.sh && build/pizza ...") only the pizza part is kept: the test script has
// already run the set-up.
std::vector<std::string> readme_commands(const std::string& readme) {
  std::vector<std::string> out;
  std::istringstream in(readme);
  std::string line, pending;
  bool in_sh = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (!in_sh) continue;
    if (!pending.empty()) {
      pending += " " + line;
    } else {
      auto at = line.find("build/pizza ");
      const bool setup = line.rfind("scripts/setup.sh && ", 0) == 0;
      const bool runnable = line.rfind("build/pizza ", 0) == 0 || line.rfind("PIZZA_", 0) == 0 ||
                            line.rfind("printf ", 0) == 0 || (setup && at != std::string::npos);
      if (!runnable) continue;
      pending = setup ? line.substr(at) : line;
    }
    if (!pending.empty() && pending.back() == '\\') {
      pending.pop_back();
      continue;
    }
    out.push_back(pending);
    pending.clear();
  }
  return out;
}

}  // namespace

TEST_CASE("every README command runs on the demo model", "[cli][readme]") {
  const std::filesystem::path source = PIZZA_SOURCE_DIR;
  const auto commands = readme_commands(pizza::test::slurp(source / "README.md"));
  REQUIRE(commands.size() >= 8);
  // A scratch tree shaped like a checkout: <tmp>/shared -> ../shared, <tmp>/work/build -> build.
  pizza::test::TempDir tmp;
  std::filesystem::create_directory_symlink(pizza::test::shared(""), tmp / "shared");
  std::filesystem::create_directory(tmp / "work");
  std::filesystem::create_directory_symlink(std::filesystem::path(PIZZA_BINARY).parent_path(), tmp / "work" / "build");
  std::filesystem::create_directory_symlink(source / "configs", tmp / "work" / "configs");
  for (const auto& cmd : commands) {
    INFO("README command: " << cmd);
    // The command sits on its own line so that a trailing "# comment" cannot swallow the rest.
    const std::string shell = "cd '" + (tmp / "work").string() + "' && (\n" + cmd + "\n) >/dev/null 2>cmd.err";
    const int rc = std::system(shell.c_str());
    INFO("stderr: " << pizza::test::slurp(tmp / "work" / "cmd.err"));
    CHECK(rc == 0);
  }
}
