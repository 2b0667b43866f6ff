// --config FILE: the shipped configs run on stories260K, command-line flags win over the file,
// and a broken config is a one-line usage error naming the file.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <regex>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

std::string config(const std::string& name) { return std::string(PIZZA_SOURCE_DIR) + "/configs/" + name; }

struct Doc {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Doc(const std::string& json) { REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS); }
  std::string str(const char* key) const { return std::string(std::string_view(root[key].get_string().value())); }
  size_t size(const char* key) const { return simdjson::dom::array(root[key].value()).size(); }
};

CliResult local_json(std::vector<std::string> args) {
  args.insert(args.begin(), "local");
  for (const char* a : {"-p", "Once upon a time there was", "-f", "json", "--quiet"}) args.emplace_back(a);
  return run_cli(args);
}

}  // namespace

TEST_CASE("cli: configs/local-saliency.toml on stories260K with --model and -n that override the file", "[cli][config]") {
  auto r = local_json({"--config", config("local-saliency.toml"), "--model", stories_dir(), "-n", "3"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  Doc d(r.out);
  CHECK(d.str("method") == "saliency");
  CHECK(d.str("unit") == "word");  // from the file
  CHECK(d.size("outputs") == 3);   // the file says 16
  CHECK(std::string(std::string_view(d.root["model"]["path"].get_string().value())) == stories_dir());
  // skip-special-tokens = true: no BOS column.
  for (simdjson::dom::element in : simdjson::dom::array(d.root["inputs"].value())) CHECK_FALSE(bool(in["special"].get_bool().value()));
}

TEST_CASE("cli: configs/local-occlusion.toml on stories260K", "[cli][config]") {
  auto r = local_json({"--config", config("local-occlusion.toml"), "--model", stories_dir(), "-n", "3"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  Doc d(r.out);
  CHECK(d.str("method") == "occlusion");
  CHECK(d.str("unit") == "word");
  CHECK(d.size("outputs") == 3);
  // "Once upon a time there was": 6 words, one column each.
  CHECK(d.size("inputs") == 6);
}

TEST_CASE("cli: a command-line flag overrides the config value else the file's applies", "[cli][config]") {
  TempDir dir;
  // Underscore and dash spellings both work; --config may come before or after `local`.
  spit(dir / "c.toml", "[local]\nmodel = \"" + stories_dir() + "\"\nmax_new_tokens = 5\nmethod = \"input-x-gradient\"\n");
  const std::string cfg = (dir / "c.toml").string();
  auto from_file = local_json({"--config", cfg});
  INFO("stderr: " << from_file.err);
  REQUIRE(from_file.exit_code == 0);
  CHECK(Doc(from_file.out).size("outputs") == 5);
  CHECK(Doc(from_file.out).str("method") == "input-x-gradient");

  auto flag = run_cli({"--config", cfg, "local", "-n", "2", "--method", "saliency", "-p", "Once upon a time", "-f", "json", "-q"});
  INFO("stderr: " << flag.err);
  REQUIRE(flag.exit_code == 0);
  CHECK(Doc(flag.out).size("outputs") == 2);
  CHECK(Doc(flag.out).str("method") == "saliency");
}

TEST_CASE("cli: batch options come from the config too", "[cli][config][batch]") {
  TempDir dir;
  spit(dir / "p.txt", "Once upon a time\nThe dog\n");
  spit(dir / "c.toml", "[local]\nprompts = \"" + (dir / "p.txt").string() + "\"\nmax-new-tokens = 2\nquiet = true\n");
  auto r = run_cli({"local", "--config", (dir / "c.toml").string(), "--model", stories_dir()});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
  CHECK(r.out.rfind("{\"id\":\"1\",", 0) == 0);
}

TEST_CASE("cli: config file errors are usage errors naming the file", "[cli][config]") {
  TempDir dir;
  const std::string cfg = (dir / "c.toml").string();
  spit(cfg, "[local]\nmax-new-tokenz = 5\n");
  auto r = local_json({"--config", cfg, "--model", stories_dir()});
  check_usage_error(r, "c.toml");
  CHECK(r.err.find("max-new-tokenz") != std::string::npos);

  // The message names the file, the section and the key.
  check_usage_error(r, "--config " + cfg + ": [local] max-new-tokenz: unknown key (not an option of pizza local");

  // A bad value names the file too (CLI11 alone names only the option, as if typed).
  spit(cfg, "[local]\nmax-new-tokens = \"many\"\n");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "--config " + cfg + ": ");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "many");
  spit(cfg, "[local]\nnorm = \"l7\"\n");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "--config " + cfg + ": --norm");
  // ... but not a bad value typed on the command line next to a config file.
  spit(cfg, "[local]\nunit = \"word\"\n");
  r = local_json({"--config", cfg, "--model", stories_dir(), "--norm", "l7"});
  check_usage_error(r, "--norm");
  CHECK(r.err.find("c.toml") == std::string::npos);

  // An empty value is an error, not 0 or "".
  spit(cfg, "[local]\nunit = \"word\"\nmax-new-tokens =\n");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "[local] max-new-tokens: empty value");
  spit(cfg, "[local]\nmax-new-tokens =   # none yet\n");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "[local] max-new-tokens: empty value");
  // An option that does not apply to the run is refused from the file as from the command line.
  spit(cfg, "[local]\nmethod = \"occlusion\"\nig-steps = 8\n");
  check_usage_error(local_json({"--config", cfg, "--model", stories_dir()}), "--ig-steps does not apply to --method occlusion");

  check_usage_error(local_json({"--config", (dir / "nope.toml").string(), "--model", stories_dir()}), "nope.toml");
}

TEST_CASE("cli: configs/ci-regression.toml drives pizza diff", "[cli][config]") {
  TempDir dir;
  spit(dir / "p.txt", "Once upon a time\nThe dog ran\n");
  const auto base = dir / "base.jsonl", fresh = dir / "new.jsonl";
  auto r = run_cli({"local", "--model", stories_dir(), "--prompts", (dir / "p.txt").string(), "-n", "3", "-q", "-o", base.string()});
  REQUIRE(r.exit_code == 0);
  r = run_cli({"diff", "--config", config("ci-regression.toml"), base.string(), base.string()});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  // Move the first score of the first record by 0.5: far beyond atol + rtol * |score| (< 1).
  std::string text = slurp(base);
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex(R"("matrix":\[\[(-?[0-9.e+-]+))")));
  const double moved = std::stod(m[1].str()) + 0.5;
  text.replace(static_cast<size_t>(m.position(1)), static_cast<size_t>(m.length(1)), std::to_string(moved));
  spit(fresh, text);
  r = run_cli({"diff", "--config", config("ci-regression.toml"), base.string(), fresh.string()});
  CHECK(r.exit_code == 1);
}
