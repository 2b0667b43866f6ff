// --max-memory on the command line: sizes parsed or refused (exit 2 naming the option), a
// budget below one row refused before any work (exit 1, one line saying how much is needed), and
// the budget and chosen batch reported in timings.
#include <catch2/catch.hpp>

#include <regex>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

CliResult local(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"local", "-m", stories_dir(), "-p", "Once upon a time", "-n", "3", "-q"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_cli(args);
}

int64_t timing(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\": (\\d+)"))) return -1;
  return std::stoll(m[1]);
}

}  // namespace

TEST_CASE("cli: --max-memory refuses sizes it cannot read naming the option and value", "[cli]") {
  for (const char* bad : {"2X", "0", "-1G", "nan", "lots"}) {
    INFO(bad);
    const auto r = local({"--max-memory", bad});
    check_usage_error(r, "--max-memory");
    CHECK(r.err.find(std::string("'") + bad + "'") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("cli: a --max-memory below one row fails with one line saying what one row needs", "[cli]") {
  // stories260K's weights alone are about 1 MiB.
  check_input_error(local({"--max-memory", "1K"}), {"one row of saliency over", "needs ~", "--max-memory allows 1.0 KiB"});
  check_input_error(local({"--max-memory", "1K", "--method", "integrated-gradients", "--algorithm", "reference"}),
                    {"one row of integrated-gradients", "--max-memory allows 1.0 KiB"});
  check_input_error(local({"--max-memory", "1K", "--method", "occlusion"}),
                    {"one perturbed prompt of", "needs ~", "--max-memory allows 1.0 KiB"});
}

TEST_CASE("cli: timings report the memory budget and the rows per pass it allowed", "[cli]") {
  const auto dflt = local({"-f", "json"});
  REQUIRE(dflt.exit_code == 0);
  // The default: 3/4 of the available memory plus the weights, so at least some MB here.
  CHECK(timing(dflt.out, "memory_budget_bytes") > (int64_t{1} << 20));
  CHECK(timing(dflt.out, "rows_per_pass") == 3);  // 3 output rows, --max-batch 16
  CHECK(timing(dflt.out, "estimated_peak_bytes") > 0);
  const auto given = local({"-f", "json", "--max-memory", "1.5G", "--max-batch", "2"});
  REQUIRE(given.exit_code == 0);
  CHECK(timing(given.out, "memory_budget_bytes") == 1536LL << 20);
  CHECK(timing(given.out, "rows_per_pass") == 2);
  const auto occ = local({"-f", "json", "--method", "occlusion", "--max-memory", "2G"});
  REQUIRE(occ.exit_code == 0);
  CHECK(timing(occ.out, "memory_budget_bytes") == 2LL << 30);
  CHECK(timing(occ.out, "rows_per_pass") == 16);
}

TEST_CASE("cli: pizza eval takes --max-memory for its local methods and scoring", "[cli]") {
  const auto eval = [](const std::string& size) {
    return run_cli({"eval", "-m", stories_dir(), "--prompt", "Once upon a time", "-n", "3", "--methods", "saliency",
                    "--metrics", "deletion", "--max-memory", size, "-q"});
  };
  check_input_error(eval("1K"), {"one row of saliency", "--max-memory allows 1.0 KiB"});
  check_usage_error(eval("2X"), "--max-memory");
  CHECK(eval("3G").exit_code == 0);
}
