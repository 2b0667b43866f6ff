// `pizza local` refuses what it cannot attribute with one clear line: exit 2 for usage errors
// (flags), exit 1 for input the model cannot take — never a crash or a partial table.
#include <catch2/catch.hpp>

#include <fstream>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

CliResult local(std::vector<std::string> args, const std::string& model = stories_dir()) {
  args.insert(args.begin(), {"local", "--model", model});
  return run_cli(args);
}

// `n` copies of " a": stories260K's tokenizer gives one token per copy (plus BOS).
std::string words(int n) {
  std::string s = "a";
  for (int i = 1; i < n; ++i) s += " a";
  return s;
}

}  // namespace

TEST_CASE("cli: local usage errors exit 2 naming the flag", "[cli][bad-input]") {
  SECTION("--max-new-tokens 0") { check_usage_error(local({"-p", "Once", "--max-new-tokens", "0"}), "--max-new-tokens"); }
  SECTION("--max-new-tokens -3") { check_usage_error(local({"-p", "Once", "--max-new-tokens", "-3"}), "--max-new-tokens"); }
  SECTION("unknown method") { check_usage_error(local({"-p", "Once", "-n", "2", "--method", "shapley"}), "shapley"); }
  SECTION("unknown target") { check_usage_error(local({"-p", "Once", "-n", "2", "--target", "entropy"}), "entropy"); }
  SECTION("unknown norm") { check_usage_error(local({"-p", "Once", "-n", "2", "--norm", "l3"}), "l3"); }
  SECTION("unknown format") { check_usage_error(local({"-p", "Once", "-n", "2", "--format", "yaml"}), "yaml"); }
}

TEST_CASE("cli: local input errors exit 1 with one clear line", "[cli][bad-input]") {
  SECTION("an empty prompt with a tokenizer that adds no BOS") {
    ModelCopy m;
    std::ofstream(m / "tokenizer_config.json") << R"({"add_bos_token": false})";
    check_input_error(local({"-p", "", "-n", "2"}, m.path().string()), {"empty"});
  }
  SECTION("a prompt longer than the model's context (512 positions)") {
    check_input_error(local({"-p", words(600), "-n", "2"}), {"512"});
  }
  SECTION("a prompt that fits but whose output would not") {
    check_input_error(local({"-p", words(505), "-n", "20"}), {"512"});
  }
}

TEST_CASE("cli: an empty prompt is attributed to BOS alone when the tokenizer adds one", "[cli][bad-input]") {
  // The counterpart of the error above: with BOS there is something to condition on.
  auto r = local({"-p", "", "-n", "2", "--format", "csv"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("<s>") != std::string::npos);
}
