// `pizza generate` and `pizza tokenize` as a user runs them, against llama2.c's reference
// output for stories260K.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <array>
#include <filesystem>
#include <fstream>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

// llama2.c's 200 greedy tokens from BOS (first piece without its leading space).
std::string reference_text() { return slurp(shared("reference/stories260K/expected_greedy_t0_n200.txt")); }

CliResult generate(std::vector<std::string> extra, const std::string& stdin_data = "") {
  std::vector<std::string> args{"generate", "--model", stories_dir()};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_cli(args, stdin_data);
}

// The greedy continuation of "Once upon a time": llama2.c's greedy run from BOS starts with
// exactly the tokens of "Once upon a time" (ids 403 407 261 378), so the continuation is the
// rest of the reference text, cut at a token boundary.
void check_once_upon_a_time(const CliResult& r) {
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.size() > 1);
  REQUIRE(r.out.back() == '\n');
  const std::string cont = r.out.substr(0, r.out.size() - 1);
  CHECK(cont.rfind(", there was a little girl", 0) == 0);
  CHECK(reference_text().rfind("Once upon a time" + cont, 0) == 0);
}

}  // namespace

TEST_CASE("cli: generate 200 tokens from BOS prints llama2.c's text", "[cli][generate]") {
  auto r = generate({"--prompt", "", "-n", "200"});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == reference_text() + "\n");
}

TEST_CASE("cli: generate --dtype float64 gives the same text", "[cli][generate][dtype]") {
  auto r = generate({"--prompt", "", "--max-new-tokens", "200", "--dtype", "float64"});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == reference_text() + "\n");
}

TEST_CASE("cli: generate --prompt - reads standard input", "[cli][generate]") {
  auto from_stdin = generate({"--prompt", "-", "-n", "20"}, "Once upon a time");
  check_once_upon_a_time(from_stdin);
  auto from_arg = generate({"--prompt", "Once upon a time", "-n", "20"});
  check_once_upon_a_time(from_arg);
  CHECK(from_stdin.out == from_arg.out);
  // echo's newline is not part of the prompt: one trailing newline is stripped (only one).
  CHECK(generate({"--prompt", "-", "-n", "20"}, "Once upon a time\n").out == from_arg.out);
  CHECK(generate({"--prompt", "-", "-n", "20"}, "Once upon a time\r\n").out == from_arg.out);
  CHECK(generate({"--prompt", "-", "-n", "20"}, "Once upon a time\n\n").out != from_arg.out);
}

TEST_CASE("cli: generate --threads 1 works", "[cli][generate]") {
  auto r = generate({"--prompt", "Once upon a time", "-n", "20", "--threads", "1"});
  check_once_upon_a_time(r);
}

TEST_CASE("cli: generate --device cuda on a CPU-only libtorch is a clear error", "[cli][generate]") {
  auto r = generate({"--prompt", "hi", "--device", "cuda"});
  check_input_error(r, {"--device cuda", "CUDA"});
}

TEST_CASE("cli: usage errors exit 2", "[cli][usage]") {
  SECTION("unknown flag") { check_usage_error(generate({"--prompt", "hi", "--bogus-flag"}), "--bogus-flag"); }
  SECTION("missing --prompt") { check_usage_error(generate({}), "--prompt"); }
  SECTION("missing --model") { check_usage_error(run_cli({"generate", "--prompt", "hi"}), "--model"); }
  SECTION("--max-new-tokens 0") { check_usage_error(generate({"--prompt", "hi", "--max-new-tokens", "0"}), "--max-new-tokens"); }
  SECTION("--max-new-tokens not a number") { check_usage_error(generate({"--prompt", "hi", "-n", "lots"}), "lots"); }
  SECTION("--dtype float16") { check_usage_error(generate({"--prompt", "hi", "--dtype", "float16"}), "float16"); }
  SECTION("--device tpu") { check_usage_error(generate({"--prompt", "hi", "--device", "tpu"}), "tpu"); }
  SECTION("--threads -1") { check_usage_error(generate({"--prompt", "hi", "--threads", "-1"}), "--threads"); }
  SECTION("unknown subcommand") { check_usage_error(run_cli({"frobnicate"}), "subcommand"); }
  SECTION("no subcommand") {
    auto r = run_cli({});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
  }
  SECTION("tokenize --format yaml") {
    check_usage_error(run_cli({"tokenize", "--model", stories_dir(), "--prompt", "hi", "--format", "yaml"}), "yaml");
  }
}

TEST_CASE("cli: tokenize --format json has the reference ids and byte spans", "[cli][tokenize]") {
  // reference_outputs.json: "The cat sat on the mat.\nIt was happy." ->
  // 1 291 280 294 262 294 353 265 284 294 426 13 442 413 286 393 426.
  const std::string text = "The cat sat on the mat.\nIt was happy.";
  auto r = run_cli({"tokenize", "--model", stories_dir(), "--prompt", "-", "--format", "json"}, text);
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(r.out).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["text"]) == text);
  std::vector<int64_t> ids;
  size_t pos = 0;
  std::string joined;
  for (simdjson::dom::element t : simdjson::dom::array(doc["tokens"])) {
    ids.push_back(int64_t(t["id"]));
    simdjson::dom::array span = t["span"];
    const auto b = static_cast<size_t>(uint64_t(span.at(0))), e = static_cast<size_t>(uint64_t(span.at(1)));
    CHECK(b == pos);
    REQUIRE(e >= b);
    REQUIRE(e <= text.size());
    CHECK(std::string_view(t["text"]) == text.substr(b, e - b));
    joined += text.substr(b, e - b);
    pos = e;
  }
  CHECK(ids == std::vector<int64_t>{1, 291, 280, 294, 262, 294, 353, 265, 284, 294, 426, 13, 442, 413, 286, 393, 426});
  CHECK(joined == text);

  // Spans worked out by hand for "Once upon a time": O-n-c-e is [0,4), " upon" [4,9),
  // " a" [9,11), " time" [11,16); BOS is special and covers nothing.
  auto once = run_cli({"tokenize", "--model", stories_dir(), "--prompt", "Once upon a time", "--format", "json"});
  REQUIRE(once.exit_code == 0);
  simdjson::dom::element odoc;
  REQUIRE(parser.parse(once.out).get(odoc) == simdjson::SUCCESS);
  std::vector<std::array<uint64_t, 2>> spans;
  std::vector<std::string> pieces;
  std::vector<bool> special;
  for (simdjson::dom::element t : simdjson::dom::array(odoc["tokens"])) {
    simdjson::dom::array span = t["span"];
    spans.push_back({uint64_t(span.at(0)), uint64_t(span.at(1))});
    pieces.emplace_back(std::string_view(t["piece"]));
    special.push_back(bool(t["special"]));
  }
  CHECK(spans == std::vector<std::array<uint64_t, 2>>{{0, 0}, {0, 4}, {4, 9}, {9, 11}, {11, 16}});
  CHECK(pieces == std::vector<std::string>{"<s>", "\xE2\x96\x81Once", "\xE2\x96\x81upon", "\xE2\x96\x81" "a",
                                           "\xE2\x96\x81time"});
  CHECK(special == std::vector<bool>{true, false, false, false, false});
}

TEST_CASE("cli: tokenize --no-special-tokens drops BOS", "[cli][tokenize]") {
  auto r = run_cli({"tokenize", "--model", stories_dir(), "--prompt", "Once upon a time", "--format", "json",
                    "--no-special-tokens"});
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(r.out).get(doc) == simdjson::SUCCESS);
  std::vector<int64_t> ids;
  for (simdjson::dom::element t : simdjson::dom::array(doc["tokens"])) ids.push_back(int64_t(t["id"]));
  CHECK(ids == std::vector<int64_t>{403, 407, 261, 378});
}

TEST_CASE("cli: tokenize with a tiktoken encoding name and --tokenizer-dir gives the reference ids", "[cli][tokenize]") {
  // o200k_base.jsonl, first line: "Hello world" -> 13225 2375 (tiktoken's own output).
  auto r = run_cli({"tokenize", "--tokenizer", "o200k_base", "--tokenizer-dir", shared("tokenizers/tiktoken").string(), "--prompt",
                    "Hello world", "--format", "json"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(r.out).get(doc) == simdjson::SUCCESS);
  std::vector<int64_t> ids;
  for (simdjson::dom::element t : doc["tokens"].get_array()) ids.push_back(int64_t(t["id"]));
  CHECK(ids == std::vector<int64_t>{13225, 2375});
  check_usage_error(run_cli({"tokenize", "--tokenizer-dir", shared("tokenizers/tiktoken").string(), "--prompt", "x"}), "--tokenizer");
}

TEST_CASE("cli: tokenize --model org/name finds a tokenizer-only snapshot in the Hugging Face cache, offline", "[cli][tokenize]") {
  // The cache layout huggingface_hub writes: refs/main -> snapshots/<commit>/ with the tokenizer
  // files only (no weights: tokenize must not need them).
  TempDir cache;
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const auto repo = cache / "models--pizza-test--stories260K";
  std::filesystem::create_directories(repo / "refs");
  std::filesystem::create_directories(repo / "snapshots" / commit);
  std::ofstream(repo / "refs" / "main") << commit;
  for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    std::filesystem::copy_file(shared("models/stories260K") / f, repo / "snapshots" / commit / f);
  const std::vector<std::string> env{"HF_HUB_CACHE=" + cache.path().string(), "HF_HUB_OFFLINE=1"};
  auto from_cache = run_cli({"tokenize", "--model", "pizza-test/stories260K", "--prompt", "Once upon a time", "--format", "json"}, "", env);
  INFO("stderr: " << from_cache.err);
  REQUIRE(from_cache.exit_code == 0);
  auto from_dir = run_cli({"tokenize", "--model", stories_dir(), "--prompt", "Once upon a time", "--format", "json"});
  REQUIRE(from_dir.exit_code == 0);
  // Same ids, pieces and spans; only the tokenizer's description (its path) differs.
  auto tokens = [](const std::string& json) { return json.substr(json.find("\"tokens\"")); };
  CHECK(tokens(from_cache.out) == tokens(from_dir.out));
  // A model command still needs the weights, and says so rather than using the partial snapshot.
  auto generate = run_cli({"generate", "--model", "pizza-test/stories260K", "--prompt", "Once", "-n", "2"}, "", env);
  check_input_error(generate, {"pizza-test/stories260K", "offline"});
}

TEST_CASE("cli: -n near the integer limit is a context error at once (no endless generation)", "[cli][generate]") {
  // prompt length + -n used to overflow int64 in the context check and generate forever.
  for (const char* cmd : {"generate", "local"}) {
    INFO("pizza " << cmd);
    auto r = run_cli({cmd, "--model", stories_dir(), "-p", "Once upon a time", "-n", "9223372036854775807"});
    check_input_error(r, {"exceeds the model's context of 512 tokens"});
  }
}
