// `pizza api` end to end against `pizza serve` (the built binary, stories260K): the black-box
// engine over HTTP must reproduce `pizza local`'s white-box occlusion exactly when scoring
// teacher-forced, and behave as a well-mannered HTTP client (cache, no key leaks, clear errors).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <fstream>
#include <simdjson.h>

#include "support/subprocess.h"
#include "cli_helpers.h"
#include "support/paths.h"

namespace {

using pizza::test::run_cli;
using pizza::test::shared;

using Server = pizza::test::PizzaServe;

struct Parsed {
  std::vector<std::string> outputs;
  size_t rows = 0, cols = 0;
  std::vector<double> values;
};

// The first matrix and the output tokens of a `--format json` result.
Parsed parse_result(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(json);
  Parsed p;
  for (simdjson::dom::element o : root["outputs"].get_array()) p.outputs.emplace_back(std::string_view(o["text"]));
  for (simdjson::dom::element row : root["matrix"].get_array()) {
    ++p.rows;
    size_t cols = 0;
    for (simdjson::dom::element v : row.get_array()) {
      p.values.push_back(double(v));
      ++cols;
    }
    p.cols = cols;
  }
  return p;
}

const std::string kPrompt = "Once upon a time, there was a little girl named Lily.";

std::vector<std::string> api_args(const Server& s, const std::string& max_tokens, std::vector<std::string> extra) {
  std::vector<std::string> a{"api", "--base-url", s.base_url(), "--model", "stories260K", "--prompt", kPrompt,
                             "--unit", "word", "--max-tokens", max_tokens, "--format", "json", "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST_CASE("api: teacher-forced occlusion over pizza serve equals pizza local's occlusion") {
  Server server;
  // 5 tokens (" She lo ved to play"): the 6th is a lone " ", which the server's tokenizer drops
  // when it re-tokenizes prompt + output, so it could not be scored over HTTP.
  const auto api = run_cli(api_args(server, "5", {"--endpoint", "completions", "--scoring", "teacher-forced", "--no-cache"}));
  INFO("api stderr: " << api.err);
  REQUIRE(api.exit_code == 0);
  const auto local = run_cli({"local", "--model", shared("models/stories260K").string(), "--method", "occlusion", "--scoring",
                              "teacher-forced", "--unit", "word", "--prompt", kPrompt, "-n", "5", "--format", "json",
                              "--quiet"});
  INFO("local stderr: " << local.err);
  REQUIRE(local.exit_code == 0);
  const auto a = parse_result(api.out), l = parse_result(local.out);
  CHECK(a.outputs == l.outputs);
  REQUIRE(a.rows == l.rows);
  REQUIRE(a.cols == l.cols);
  CHECK(a.rows == 5);
  CHECK(a.cols == 11);  // the prompt's 11 whitespace-separated words
  REQUIRE(a.values.size() == l.values.size());
  // Two float32 computations of the same log-probs: the server's one request at a time with its
  // log_softmax in float32 (a few ulps of |log-prob| < 32, <= 3.8e-6 each), pizza local's padded
  // batches (other product shapes: ~1e-5 on logits ~10). 1e-4 bounds both on any kernel; a
  // misaligned token or unit moves these scores by >> 1e-3.
  for (size_t i = 0; i < a.values.size(); ++i) CHECK(a.values[i] == Approx(l.values[i]).margin(1e-4));
  // pizza diff agrees with its default tolerances: the API result's null token ids are not a
  // difference (outputs compare by text), only the engine and model are reported as changed.
  pizza::test::TempDir dir;
  pizza::test::spit(dir / "api.json", api.out);
  pizza::test::spit(dir / "local.json", local.out);
  const auto diff = run_cli({"diff", (dir / "local.json").string(), (dir / "api.json").string()});
  INFO("diff: " << diff.out << diff.err);
  CHECK(diff.exit_code == 0);
  CHECK(diff.out.find("engine: \"local\" \u2192 \"api\"") != std::string::npos);
  // Server metadata is recorded.
  CHECK(api.out.find("\"system_fingerprints\"") != std::string::npos);
  CHECK(api.out.find("\"served_models\":[\"stories260K\"]") != std::string::npos);
}

TEST_CASE("api: free-running prob-diff over chat, a cached rerun sends nothing, the key never leaks") {
  Server server;
  pizza::test::TempDir cache;
  const std::string key = "sk-SENTINEL-4f1d9a7e";
  const std::vector<std::string> env{"OPENAI_API_KEY=" + key};
  const auto args = api_args(server, "6", {"--cache-dir", cache.path().string(), "--metric", "prob-diff,token-displacement"});
  const auto first = run_cli(args, "", env);
  INFO("stderr: " << first.err);
  REQUIRE(first.exit_code == 0);
  const auto r = parse_result(first.out);
  CHECK(r.rows == r.outputs.size());
  CHECK(r.rows >= 1);
  CHECK(r.rows <= 6);
  CHECK(r.cols == 11);
  CHECK(r.values.size() == r.rows * r.cols);

  auto dry_args = args;
  dry_args.push_back("--dry-run");
  const auto dry = run_cli(dry_args, "", env);
  INFO("dry stdout: " << dry.out);
  REQUIRE(dry.exit_code == 0);
  // Occlusion: the original completion plus one per word, all answered by the cache.
  CHECK(dry.out.find("12 requests, 12 cached, 0 to send") != std::string::npos);

  const auto second = run_cli(args, "", env);
  REQUIRE(second.exit_code == 0);
  CHECK(parse_result(second.out).values == r.values);
  CHECK(second.out.find("\"sent\":0") != std::string::npos);

  for (const auto* text : {&first.out, &first.err, &dry.out, &dry.err, &second.out, &second.err})
    CHECK(text->find(key) == std::string::npos);
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(cache.path())) {
    if (!e.is_regular_file()) continue;
    ++files;
    CHECK(pizza::test::slurp(e.path()).find(key) == std::string::npos);
  }
  CHECK(files == 12);
}

TEST_CASE("api: a malformed base URL and an unreachable server are clear errors") {
  const std::vector<std::string> common{"--model", "m", "--prompt", "Hello there", "--no-cache", "--max-retries", "0", "--quiet"};
  auto bad = std::vector<std::string>{"api", "--base-url", "not a url"};
  bad.insert(bad.end(), common.begin(), common.end());
  pizza::test::check_input_error(run_cli(bad), {"--base-url"});

  // Port 1 on loopback: nothing listens there.
  auto down = std::vector<std::string>{"api", "--base-url", "http://127.0.0.1:1/v1"};
  down.insert(down.end(), common.begin(), common.end());
  pizza::test::check_input_error(run_cli(down), {"127.0.0.1:1"});
}

TEST_CASE("api: configs/api-openai.toml and configs/api-vllm.toml run against pizza serve") {
  Server server;
  pizza::test::TempDir cache;
  const std::filesystem::path configs = std::filesystem::path(PIZZA_SOURCE_DIR) / "configs";
  for (const char* config : {"api-openai.toml", "api-vllm.toml"}) {
    INFO("config " << config);
    // The files name real servers and models; the command line points them at the local one.
    auto r = run_cli({"api", "--config", (configs / config).string(), "--base-url", server.base_url(), "--model",
                      "stories260K", "--prompt", kPrompt, "--max-tokens", "5", "--cache-dir", cache.path().string(),
                      "--format", "json", "--quiet"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    auto parsed = parse_result(r.out);
    CHECK(parsed.rows == 5);
    CHECK(parsed.cols == 11);  // the prompt's words
  }
}

TEST_CASE("api: batch mode writes one JSONL record per prompt") {
  Server server;
  pizza::test::TempDir dir;
  {
    std::ofstream f(dir / "prompts.txt");
    f << "Once upon a time, there was a girl.\n\nLily and Tom went to the park.\n";
  }
  auto r = run_cli({"api", "--base-url", server.base_url(), "--model", "stories260K", "--prompts",
                    (dir / "prompts.txt").string(), "--unit", "word", "--max-tokens", "3", "--no-cache", "--quiet",
                    "--output", (dir / "out.jsonl").string()});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(dir / "out.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 2);  // the blank line is skipped
  for (const auto& line : lines) {
    simdjson::dom::parser parser;
    simdjson::dom::element rec;
    REQUIRE(!parser.parse(line).get(rec));
    CHECK(!rec["id"].error());
    CHECK(rec["matrix"].get_array().size() == 3);
  }
}

namespace {

// Every metric's matrix of a `--format json` result, by metric name.
std::map<std::string, std::vector<double>> parse_matrices(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(json);
  std::map<std::string, std::vector<double>> out;
  for (auto [name, matrix] : root["matrices"].get_object()) {
    auto& values = out[std::string(name)];
    for (simdjson::dom::element row : matrix.get_array())
      for (simdjson::dom::element v : row.get_array()) values.push_back(double(v));
  }
  return out;
}

}  // namespace

TEST_CASE("api: free-running prob-diff, cosine and token-displacement equal pizza local's direct computation") {
  // One request per batch on the server, so its float32 log-probabilities do not depend on which
  // requests happened to be batched together.
  Server server({"--max-batch", "1"});
  const std::string model = shared("models/stories260K").string();
  const std::string metrics = "prob-diff,cosine,token-displacement";
  // Over HTTP: output tokens arrive as text and top-20 alternatives; cosine looks the text up
  // in --embeddings' vocabulary.
  const auto api = run_cli(api_args(server, "8", {"--endpoint", "completions", "--scoring", "free-running", "--metric", metrics,
                                                  "--embeddings", model, "--no-cache"}));
  INFO("api stderr: " << api.err);
  REQUIRE(api.exit_code == 0);
  // Directly: the same model generating locally, the same formulas on token ids.
  const auto local = run_cli({"local", "--model", model, "--method", "occlusion", "--scoring", "free-running", "--metric", metrics,
                              "--unit", "word", "--prompt", kPrompt, "-n", "8", "--format", "json", "--quiet"});
  INFO("local stderr: " << local.err);
  REQUIRE(local.exit_code == 0);
  CHECK(parse_result(api.out).outputs == parse_result(local.out).outputs);
  const auto a = parse_matrices(api.out), l = parse_matrices(local.out);
  REQUIRE(a.size() == 3);
  REQUIRE(l.size() == 3);
  for (const auto& [name, values] : l) {
    INFO("metric " << name);
    REQUIRE(a.count(name) == 1);
    const auto& got = a.at(name);
    REQUIRE(got.size() == values.size());
    REQUIRE(values.size() == 8 * 11);
    double largest = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      CHECK(got[i] == Approx(values[i]).margin(1e-4));  // float32 on both sides, other shapes: as in the occlusion test above
      largest = std::max(largest, std::abs(values[i]));
    }
    CHECK(largest > 0.01);  // the prompt's words matter: the comparison is not between zeros
  }
}

TEST_CASE("api: cosine and nth-nearest need --embeddings") {
  Server server;
  using pizza::test::check_usage_error;
  check_usage_error(run_cli(api_args(server, "2", {"--metric", "cosine", "--no-cache"})), "--embeddings");
  check_usage_error(run_cli(api_args(server, "2", {"--perturbation", "nth-nearest", "--no-cache"})), "--embeddings");
}
