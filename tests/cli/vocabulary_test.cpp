// One vocabulary across the CLI: options that do not apply to the run are refused naming both
// options, former option names still work but are not advertised, every writing subcommand
// has -f/--format and -o/--output, and the output format follows the file's extension.
#include <simdjson.h>

#include <catch2/catch.hpp>

#include <set>

#include "app/batch.h"
#include "app/commands.h"
#include "app/option_scope.h"
#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

CliResult local(std::vector<std::string> args) {
  std::vector<std::string> all{"local", "--model", stories_dir(), "-p", "Once upon a time", "--quiet"};
  all.insert(all.end(), args.begin(), args.end());
  return run_cli(all);
}

}  // namespace

TEST_CASE("cli: an option that does not apply to the run is a usage error naming both options", "[cli][vocabulary]") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--method", "occlusion", "--target", "logprob"}, "--target does not apply to --method occlusion"},
      {{"--target-text", " there", "-n", "3"}, "--max-new-tokens does not apply with --target-text"},
      {{"--unit", "word", "--spans", "0:4"}, "--unit does not apply with --spans or --unit-regex"},
      {{"--unit", "word", "--unit-regex", "\\w+"}, "--unit does not apply with --spans or --unit-regex"},
      {{"--method", "occlusion", "--norm", "l2"}, "--norm does not apply to --method occlusion"},
      {{"--method", "input-x-gradient", "--norm", "l2"}, "--norm does not apply to --method input-x-gradient"},
      {{"--method", "hierarchical", "--algorithm", "reference"}, "--algorithm does not apply to --method hierarchical"},
      {{"--method", "saliency", "--ig-steps", "4"}, "--ig-steps does not apply to --method saliency"},
      {{"--method", "saliency", "--ig-baseline", "zero"}, "--ig-baseline does not apply to --method saliency"},
      {{"--method", "saliency", "--abs"}, "--abs does not apply to --method saliency"},
      {{"--method", "saliency", "--strategy", "pad"}, "--strategy does not apply to --method saliency"},
      {{"--method", "saliency", "--metric", "logprob-diff"}, "--metric does not apply to --method saliency"},
      {{"--method", "occlusion", "--aggregate", "max"}, "--aggregate does not apply to --method occlusion"},
      {{"--method", "occlusion", "--normalize", "row-max"}, "--normalize does not apply to --method occlusion"},
      {{"--method", "occlusion", "--top-logprobs", "5"}, "--top-logprobs does not apply to --scoring teacher-forced"},
      {{"--method", "occlusion", "--stride", "2"}, "--stride does not apply to --method occlusion"},
      {{"--method", "occlusion", "--ablations", "8"}, "--ablations does not apply to --method occlusion"},
      {{"--method", "occlusion", "--seed", "3"}, "--seed does not apply to --method occlusion"},
      {{"--method", "occlusion", "--replacement", "x"}, "--replacement does not apply to --strategy delete"},
      {{"--method", "occlusion", "--nth", "2"}, "--nth does not apply to --strategy delete"},
      {{"--method", "occlusion", "--scoring", "teacher-forced", "--at-output-location"},
       "--ignore-output-location does not apply to --scoring teacher-forced"},
  };
  for (const Case& c : cases) {
    INFO(Catch::rangeToString(c.args));
    check_usage_error(local(c.args), c.message);
  }
}

TEST_CASE("cli: options in their scope still run", "[cli][vocabulary]") {
  const std::vector<std::vector<std::string>> runs = {
      {"--method", "saliency", "--norm", "l2", "-n", "2"},
      {"--method", "integrated-gradients", "--ig-steps", "4", "--abs", "-n", "2"},
      {"--target-text", " there was"},
      {"--spans", "0:4,5:9"},
      {"--method", "occlusion", "--scoring", "free-running", "--top-logprobs", "5", "--at-output-location", "-n", "2"},
      {"--method", "hierarchical", "--stride", "1", "-n", "2"},
      {"--method", "context-cite", "--ablations", "8", "--seed", "3", "-n", "2"},
      {"--method", "occlusion", "--strategy", "fixed", "--replacement", "dog", "-n", "2"},
  };
  for (const auto& args : runs) {
    const auto r = local(args);
    INFO(Catch::rangeToString(args) << "\nstderr: " << r.err);
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("cli: pizza api refuses options outside their scope before any request", "[cli][vocabulary]") {
  // Port 1: nothing listens; the refusal must come first.
  const std::vector<std::string> base{"api", "-m", "x", "--base-url", "http://127.0.0.1:1/v1", "--quiet"};
  const auto api = [&](std::vector<std::string> extra) {
    auto all = base;
    if (std::find(extra.begin(), extra.end(), "-p") == extra.end()) all.insert(all.end(), {"-p", "a b c"});
    all.insert(all.end(), extra.begin(), extra.end());
    return run_cli(all, "", {"OPENAI_API_KEY=sk-test"});
  };
  check_usage_error(api({"--init-chunk-size", "2"}), "--init-chunk-size does not apply to --method occlusion");
  check_usage_error(api({"--endpoint", "completions", "--legacy-max-tokens"}),
                    "--legacy-max-tokens does not apply to --endpoint completions");
  check_usage_error(api({"--lasso-alpha", "0.1"}), "--lasso-alpha does not apply to --method occlusion");
  check_usage_error(api({"--top-logprobs", "21"}), "--top-logprobs must be 1..20");
  check_usage_error(api({"-p", ""}), "--prompt is empty");
}

TEST_CASE("cli: pizza eval refuses options that apply to none of its methods or metrics", "[cli][vocabulary]") {
  const auto eval = [](std::vector<std::string> extra) {
    std::vector<std::string> all{"eval", "--model", stories_dir(), "-p", "Once upon a time", "--unit", "word", "-n", "2",
                                 "--quiet"};
    all.insert(all.end(), extra.begin(), extra.end());
    return run_cli(all);
  };
  check_usage_error(eval({"--methods", "occlusion,random", "--ig-steps", "4"}),
                    "--ig-steps does not apply to --methods occlusion,random; it is for integrated-gradients");
  check_usage_error(eval({"--methods", "occlusion", "--target", "logprob"}), "--target does not apply to --methods occlusion");
  check_usage_error(eval({"--methods", "saliency,integrated-gradients", "--abs", "--norm", "l2", "--aggregate", "max",
                          "--metrics", "deletion", "--k", "2"}),
                    "--k does not apply to --metrics deletion; it is for --metrics topk");
  check_usage_error(eval({"--methods", "saliency", "--metrics", "deletion,topk", "--ablations", "8"}),
                    "--ablations does not apply to --metrics deletion,topk");
  check_usage_error(eval({"--methods", "saliency", "--target-text", " there"}),
                    "--max-new-tokens does not apply with --target-text");
  // One method in scope is enough: --norm is saliency's, and saliency is among the methods.
  const auto ok = eval({"--methods", "occlusion,saliency", "--norm", "l2", "--metrics", "deletion,lds", "--ablations", "8"});
  INFO("stderr: " << ok.err);
  CHECK(ok.exit_code == 0);
}

TEST_CASE("cli: former option names work but help shows one name per concept", "[cli][vocabulary]") {
  // Hidden: still accepted (old scripts and config files) ...
  auto r = local({"--method", "occlusion", "--scoring", "free-running", "--top-k", "3", "--max-tokens", "2", "-f", "json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser parser;
  auto doc = parser.parse(r.out);
  CHECK(simdjson::dom::array(doc["outputs"].value()).size() == 2);
  r = run_cli({"tokenize", "--model", stories_dir(), "-p", "Once", "--no-special-tokens"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("<s>") == std::string::npos);
  r = run_cli({"tokenize", "--model", stories_dir(), "-p", "Once", "--skip-special-tokens"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("<s>") == std::string::npos);
  CHECK(run_cli({"tokenize", "--model", stories_dir(), "-p", "Once"}).out.find("<s>") != std::string::npos);
  r = local({"--method", "occlusion", "--perturbation", "pad", "-n", "2"});
  CHECK(r.exit_code == 0);
  // ... and absent from every subcommand's help, which uses the one name.
  for (const std::string sub : {"generate", "tokenize", "local", "serve", "api", "eval", "diff", "render"}) {
    const auto help = run_cli({sub, "--help"});
    INFO(sub << ": " << help.out);
    for (const char* former : {"--top-k,", "--top-k ", "--max-tokens", "--perturbation", "--no-special-tokens"})
      CHECK(help.out.find(former) == std::string::npos);
  }
  for (const std::string sub : {"local", "api"}) {
    const auto help = run_cli({sub, "--help"}).out;
    CHECK(help.find("--top-logprobs") != std::string::npos);
    CHECK(help.find("--strategy") != std::string::npos);
  }
  // Every subcommand that writes a file spells it -f/--format and -o/--output.
  for (const std::string sub : {"tokenize", "local", "api", "eval", "diff", "render"}) {
    const auto help = run_cli({sub, "--help"}).out;
    INFO(sub << ": " << help);
    CHECK(help.find("-f,--format") != std::string::npos);
    CHECK(help.find("-o,--output") != std::string::npos);
  }
}

TEST_CASE("cli: the output format follows the file extension", "[cli][vocabulary]") {
  TempDir dir;
  // .jsonl: the JSON document on one line, the same result as .json.
  const auto jsonl = dir / "r.jsonl";
  const auto json = dir / "r.json";
  REQUIRE(local({"-n", "3", "-o", jsonl.string()}).exit_code == 0);
  REQUIRE(local({"-n", "3", "-o", json.string()}).exit_code == 0);
  const std::string line = slurp(jsonl);
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);
  CHECK(line.back() == '\n');
  const std::string pretty = slurp(json);
  CHECK(std::count(pretty.begin(), pretty.end(), '\n') > 10);
  simdjson::dom::parser parser;
  simdjson::dom::element a, b;
  REQUIRE(parser.parse(line).get(a) == simdjson::SUCCESS);
  const std::string a_text = simdjson::minify(a["matrix"]);
  simdjson::dom::parser parser2;
  REQUIRE(parser2.parse(pretty).get(b) == simdjson::SUCCESS);
  CHECK(a_text == simdjson::minify(b["matrix"]));
  // -f jsonl to standard output too.
  const auto r = local({"-n", "3", "-f", "jsonl"});
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);

  // pizza tokenize and pizza diff write files as well, by extension.
  const auto tok = dir / "t.json";
  REQUIRE(run_cli({"tokenize", "--model", stories_dir(), "-p", "Once upon", "-o", tok.string()}).exit_code == 0);
  simdjson::dom::parser p3;
  CHECK(simdjson::dom::array(p3.parse(slurp(tok))["tokens"].value()).size() == 3);
  const auto report = dir / "d.json";
  const auto d = run_cli({"diff", json.string(), jsonl.string(), "-o", report.string()});
  INFO(d.err);
  CHECK(d.exit_code == 0);
  simdjson::dom::parser p4;
  CHECK(simdjson::minify(p4.parse(slurp(report))["same"]) == "true");
  check_usage_error(run_cli({"diff", json.string(), jsonl.string(), "-f", "csv"}), "expected text or json");
}

TEST_CASE("cli: every option of local api and eval says which runs it is for", "[cli][vocabulary]") {
  // The subcommands as pizza builds them, in this process: their options are what they
  // declare, not what --help happens to print.
  CLI::App app;
  pizza::app::add_config_option(app);
  pizza::app::add_local_command(app);
  pizza::app::add_api_command(app, nullptr);
  pizza::app::add_eval_command(app);
  const std::pair<std::string, std::span<const pizza::app::OptionScope>> commands[] = {
      {"local", pizza::app::local_scopes()}, {"api", pizza::app::api_scopes()}, {"eval", pizza::app::eval_scopes()}};
  for (const auto& [name, scopes] : commands) {
    INFO("pizza " << name);
    std::set<std::string> declared;
    // Its own options and those of its option groups (unnamed subcommands: --prompt/--prompts).
    const CLI::App* cmd = app.get_subcommand(name);
    std::vector<const CLI::App*> parts{cmd};
    for (const CLI::App* group : cmd->get_subcommands([](const CLI::App* a) { return a->get_name().empty(); }))
      parts.push_back(group);
    for (const CLI::App* part : parts)
      for (const CLI::Option* opt : part->get_options()) {
        REQUIRE(!opt->get_lnames().empty());
        declared.insert("--" + opt->get_lnames().front());
      }
    std::set<std::string> scoped, every;
    for (const auto& s : scopes) scoped.insert(std::string(s.option));
    for (auto o : pizza::app::every_run_options(name)) every.insert(std::string(o));
    REQUIRE(declared.size() > 20);
    for (const auto& o : declared) {
      INFO(o);
      CHECK((scoped.contains(o) || every.contains(o)));
      CHECK(!(scoped.contains(o) && every.contains(o)));
    }
    // No entry for an option the command does not have (--config is the root's, inherited).
    for (const auto& o : scoped) {
      INFO("scoped " << o);
      CHECK(declared.contains(o));
    }
    for (const auto& o : every) {
      INFO("every run " << o);
      CHECK((declared.contains(o) || o == "--config"));
    }
  }
}

TEST_CASE("cli: pizza eval refuses client options without --base-url and runtime options with it", "[cli][vocabulary]") {
  const std::vector<std::string> base{"eval", "--model", stories_dir(), "-p", "Once upon a time", "--quiet"};
  const auto eval = [&](std::vector<std::string> extra) {
    auto all = base;
    all.insert(all.end(), extra.begin(), extra.end());
    return run_cli(all, "", {"OPENAI_API_KEY=sk-test"});
  };
  check_usage_error(eval({"--rpm", "10"}), "--rpm does not apply without --base-url");
  check_usage_error(eval({"--base-url", "http://127.0.0.1:1/v1", "--threads", "1"}), "--threads does not apply with --base-url");
  check_usage_error(eval({"--strategy", "delete", "--replacement", "x"}), "--replacement does not apply to --strategy delete");
}
