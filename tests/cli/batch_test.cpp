// `pizza local --prompts FILE` as a user runs it on stories260K: JSONL records, a SIGKILL and
// --resume, shards, per-record overrides and failures, and byte-identical reruns.
#include <signal.h>

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "cli/cli_helpers.h"
#include "support/subprocess.h"

using namespace pizza::test;

namespace {

// The timings object is the only part of a record that may differ between identical runs.
std::string without_timings(const std::string& text) {
  static const std::regex timings(R"("timings":\{[^{}]*\},?)");
  return std::regex_replace(text, timings, "");
}

// 50 short prompts in the style of TinyStories, with ids p00..p49.
std::string fifty_prompts() {
  const char* subjects[] = {"Lily", "Tom", "The cat", "A little bird", "Ben", "The dog", "Mom", "Sue", "The sun", "Tim"};
  const char* verbs[] = {"saw", "liked", "wanted", "found", "played with"};
  std::string text;
  for (int i = 0; i < 50; ++i) {
    const std::string id = (i < 10 ? "p0" : "p") + std::to_string(i);  // p00 .. p49
    text += "{\"id\":\"" + id + "\",\"prompt\":\"" + subjects[i % 10] + " " + verbs[i / 10] + "\"}\n";
  }
  return text;
}

std::vector<std::string> local_args(const std::filesystem::path& prompts, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"local", "--model", stories_dir(), "--prompts", prompts.string(), "-n", "4", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Each line a JSON object whose first key is "id"; returns the ids in order.
std::vector<std::string> check_records(const std::string& text) {
  simdjson::dom::parser parser;
  std::vector<std::string> ids;
  for (const std::string& line : lines_of(text)) {
    INFO(line.substr(0, 200));
    REQUIRE(line.rfind("{\"id\":\"", 0) == 0);
    simdjson::dom::element doc;
    REQUIRE(parser.parse(line).get(doc) == simdjson::SUCCESS);
    std::string_view id;
    REQUIRE(doc["id"].get(id) == simdjson::SUCCESS);
    ids.emplace_back(id);
  }
  return ids;
}

// Runs pizza and SIGKILLs it once `out` has >= `lines` lines. Returns the number of lines the
// output had when the kill was sent (or when pizza ended first).
size_t kill_after_lines(const std::vector<std::string>& args, const std::filesystem::path& out, size_t lines) {
  std::vector<std::string> argv{PIZZA_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess pizza(std::move(argv));
  size_t seen = 0;
  for (;;) {
    const std::string text = slurp(out);
    seen = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    if (seen >= lines) {
      pizza.kill(SIGKILL);
      break;
    }
    if (pizza.exited()) return seen;  // ended before the kill
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(pizza.wait() == 128 + SIGKILL);
  return seen;
}

}  // namespace

TEST_CASE("cli: batch killed with SIGKILL and resumed equals an uninterrupted run", "[cli][batch]") {
  TempDir dir;
  spit(dir / "p.jsonl", fifty_prompts());
  const auto full = dir / "full.jsonl", part = dir / "part.jsonl";

  auto r = run_cli(local_args(dir / "p.jsonl", {"--output", full.string()}));
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.empty());  // records go to --output only
  const std::string expected = slurp(full);
  const auto ids = check_records(expected);
  REQUIRE(ids.size() == 50);
  CHECK(ids.front() == "p00");
  CHECK(ids.back() == "p49");

  const size_t at_kill = kill_after_lines(local_args(dir / "p.jsonl", {"--output", part.string()}), part, 10);
  INFO("lines when killed: " << at_kill);
  CHECK(at_kill >= 10);
  CHECK(at_kill < 50);
  // Whatever the kill left, make sure the file also ends in a torn line, as a kill mid-write
  // leaves it: --resume must cut it off.
  {
    std::ofstream(part, std::ios::app | std::ios::binary) << "{\"id\":\"p4";
  }
  r = run_cli(local_args(dir / "p.jsonl", {"--output", part.string(), "--resume"}));
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string resumed = slurp(part);
  const auto resumed_ids = check_records(resumed);
  CHECK(resumed_ids.size() == 50);
  CHECK(std::set<std::string>(resumed_ids.begin(), resumed_ids.end()).size() == 50);
  CHECK(without_timings(resumed) == without_timings(expected));
  CHECK(validate_json_schema(PIZZA_SOURCE_DIR "/lib/report/attribution.schema.json", part).exit_code == 0);

  // A second --resume finds nothing to do and leaves the file as it is.
  r = run_cli(local_args(dir / "p.jsonl", {"--output", part.string(), "--resume"}));
  CHECK(r.exit_code == 0);
  CHECK(slurp(part) == resumed);
}

TEST_CASE("cli: batch output is byte-identical across runs apart from timings", "[cli][batch]") {
  TempDir dir;
  spit(dir / "p.txt", "Once upon a time\n\nThe little dog\nLily and Tom went to the park\n");
  auto a = run_cli(local_args(dir / "p.txt", {"--method", "integrated-gradients", "--ig-steps", "8"}));
  auto b = run_cli(local_args(dir / "p.txt", {"--method", "integrated-gradients", "--ig-steps", "8"}));
  INFO("stderr: " << a.err);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(check_records(a.out) == std::vector<std::string>{"1", "3", "4"});  // ids are line numbers
  CHECK(a.out.find("\"timings\":{") != std::string::npos);
  CHECK(without_timings(a.out) == without_timings(b.out));
  CHECK(without_timings(a.out) != a.out);  // the regex did strip something
}

TEST_CASE("cli: a batch record is the single-run JSON document with its id first", "[cli][batch]") {
  TempDir dir;
  auto single = run_cli({"local", "--model", stories_dir(), "-p", "Once upon a time", "-n", "4", "--quiet", "-f", "json"});
  REQUIRE(single.exit_code == 0);
  auto batch = run_cli(local_args("-"), "Once upon a time\n");
  INFO("stderr: " << batch.err);
  REQUIRE(batch.exit_code == 0);
  // Compact the pretty single document with simdjson to compare it to the record.
  simdjson::dom::parser parser;
  const std::string compact = simdjson::minify(parser.parse(single.out).value());
  REQUIRE(lines_of(batch.out).size() == 1);
  CHECK(without_timings(lines_of(batch.out)[0]) == without_timings("{\"id\":\"1\"," + compact.substr(1)));
}

TEST_CASE("cli: shard outputs together equal the unsharded run", "[cli][batch]") {
  TempDir dir;
  write_shard_prompts(dir / "p.txt");
  auto whole = run_cli(local_args(dir / "p.txt"));
  REQUIRE(whole.exit_code == 0);
  std::multiset<std::string> merged;
  for (const char* shard : {"0/3", "1/3", "2/3"}) {
    auto r = run_cli(local_args(dir / "p.txt", {"--shard", shard}));
    INFO("shard " << shard << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    for (const std::string& l : lines_of(r.out)) merged.insert(without_timings(l));
  }
  std::multiset<std::string> expected;
  for (const std::string& l : lines_of(whole.out)) expected.insert(without_timings(l));
  CHECK(expected.size() == 7);
  CHECK(merged == expected);
  // Shard 1/3 holds records 1 and 4 (0-based), i.e. lines 2 and 5.
  CHECK(check_records(run_cli(local_args(dir / "p.txt", {"--shard", "1/3"})).out) == std::vector<std::string>{"2", "5"});
}

TEST_CASE("cli: per-record overrides apply to their record alone and a failing record fails alone", "[cli][batch]") {
  TempDir dir;
  // The command line's -n 4 is the batch's default: record "forced" has a target text of its
  // own (so -n does not apply to it) and is not refused for the command line's -n.
  spit(dir / "p.jsonl",
       "{\"id\":\"short\",\"prompt\":\"Once upon a time\",\"max_new_tokens\":2}\n"
       "{\"id\":\"long\",\"prompt\":\"" + std::string(3000, 'a') + "\"}\n"
       "{\"id\":\"forced\",\"prompt\":\"Once upon a time\",\"target_text\":\" there was\"}\n"
       "{\"id\":\"default\",\"prompt\":\"Once upon a time\"}\n");
  const auto out = dir / "out.jsonl";
  auto r = run_cli(local_args(dir / "p.jsonl", {"-o", out.string()}));
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("pizza: error: 1 of 4 records failed") != std::string::npos);
  const auto lines = lines_of(slurp(out));
  REQUIRE(lines.size() == 4);
  simdjson::dom::parser parser;
  auto outputs = [&](const std::string& line) { return simdjson::dom::array(parser.parse(line)["outputs"].value()).size(); };
  CHECK(outputs(lines[0]) == 2);
  // A failure only running shows (the prompt is longer than the model's context) fails its record.
  CHECK(lines[1].rfind("{\"id\":\"long\",\"error\":\"", 0) == 0);
  CHECK(lines[1].find("512") != std::string::npos);
  CHECK(std::string_view(parser.parse(lines[2])["output_text"].get_string().value()) == " there was");
  CHECK(outputs(lines[3]) == 4);  // the run's -n 4: record 0's override did not leak
  // Results and error records alike satisfy the committed schema, line by line.
  const auto schema = validate_json_schema(PIZZA_SOURCE_DIR "/lib/report/attribution.schema.json", out);
  INFO(schema.output);
  CHECK(schema.exit_code == 0);
  CHECK(schema.output.find("valid: 4") != std::string::npos);
}

TEST_CASE("cli: a record the command would refuse stops the batch before the model loads", "[cli][batch]") {
  TempDir dir;
  const auto out = dir / "out.jsonl";
  const std::string good = "{\"id\":\"good\",\"prompt\":\"Once upon a time\"}\n";
  struct Bad {
    const char* record;
    const char* message;
    int exit_code;
  };
  const Bad bad[] = {
      {R"({"id":"bad","prompt":"Once","colour":"red"})", R"(unknown key "colour" (not an option of pizza local))", 1},
      {R"({"id":"bad","prompt":"Once","norm":"l7"})", R"("norm": )", 1},
      {R"({"id":"bad","prompt":"Once","device":"cuda"})", R"("device" applies to the whole batch)", 1},
      {R"({"id":"bad","prompt":"Once","method":"occlusion","norm":"l2"})", "--norm does not apply to --method occlusion", 2},
      {R"({"id":"bad","prompt":"Once","target_text":" x","max_new_tokens":3})", "--max-new-tokens does not apply with --target-text", 2},
      {R"({"id":"bad","prompt":""})", "--prompt is empty", 2},
  };
  for (const Bad& b : bad) {
    INFO(b.record);
    spit(dir / "p.jsonl", good + b.record + "\n");
    // A model that does not exist: the record's error must come first, before any load.
    auto args = local_args(dir / "p.jsonl", {"-o", out.string()});
    args[2] = (dir / "no-such-model").string();
    const auto r = run_cli(args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == b.exit_code);
    CHECK(r.err.rfind("pizza: error: --prompts " + (dir / "p.jsonl").string() + " line 2 (id \"bad\"): ", 0) == 0);
    CHECK(r.err.find(b.message) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(std::filesystem::exists(out));
  }
  // The command line's own options are checked against the run it describes.
  spit(dir / "p.jsonl", good);
  check_usage_error(run_cli(local_args(dir / "p.jsonl", {"--method", "occlusion", "--ig-steps", "3"})),
                    "--ig-steps does not apply to --method occlusion");
}

TEST_CASE("cli: a batch written as CSV or HTML is one report with an id column or selector", "[cli][batch]") {
  TempDir dir;
  spit(dir / "p.jsonl", "{\"id\":\"a\",\"prompt\":\"Once upon\"}\n{\"id\":\"b\",\"prompt\":\"Lily saw\"}\n");
  const auto args = [&](std::vector<std::string> extra) {
    auto a = local_args(dir / "p.jsonl", std::move(extra));
    a[6] = "2";  // -n 2
    return a;
  };
  const auto csv = dir / "out.csv";
  auto r = run_cli(args({"-o", csv.string()}));
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const auto rows = lines_of(slurp(csv));
  REQUIRE_FALSE(rows.empty());
  CHECK(rows[0].rfind("id,output_index,", 0) == 0);
  // Each record's rows are its single-prompt CSV's rows with its id in front.
  const auto single_csv = [&](const char* prompt) {
    return lines_of(run_cli({"local", "--model", stories_dir(), "-p", prompt, "-n", "2", "-f", "csv", "--quiet"}).out);
  };
  std::vector<std::string> expected;
  for (const auto& [id, prompt] : {std::pair{"a", "Once upon"}, std::pair{"b", "Lily saw"}}) {
    const auto single = single_csv(prompt);
    REQUIRE(single.size() > 1);
    if (expected.empty()) expected.push_back("id," + single[0]);
    for (size_t i = 1; i < single.size(); ++i) expected.push_back(std::string(id) + "," + single[i]);
  }
  CHECK(rows == expected);
  // The same report as rendering the JSON Lines afterwards.
  const auto jsonl = dir / "out.jsonl";
  REQUIRE(run_cli(args({"-o", jsonl.string()})).exit_code == 0);
  const auto rendered = run_cli({"render", jsonl.string(), "-f", "csv"});
  REQUIRE(rendered.exit_code == 0);
  CHECK(rendered.out == slurp(csv));
  // -f csv to standard output; HTML by extension.
  r = run_cli(args({"-f", "csv"}));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == slurp(csv));
  const auto html = dir / "out.html";
  REQUIRE(run_cli(args({"-o", html.string()})).exit_code == 0);
  CHECK(slurp(html).rfind("<!DOCTYPE html>", 0) == 0);
  // A report is written whole at the end, so it cannot be resumed.
  check_usage_error(run_cli(args({"-o", csv.string(), "--resume"})), "--resume needs JSON Lines");
}

TEST_CASE("cli: batch input and flag errors", "[cli][batch]") {
  TempDir dir;
  const auto out = dir / "out.jsonl";
  spit(dir / "dup.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"y\"}\n");
  auto r = run_cli(local_args(dir / "dup.jsonl", {"-o", out.string()}));
  check_input_error(r, {"dup.jsonl:2: duplicate id \"a\""});
  CHECK_FALSE(std::filesystem::exists(out));  // failed before anything ran

  spit(dir / "bad.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\n");
  check_input_error(run_cli(local_args(dir / "bad.jsonl")), {"bad.jsonl:2: invalid JSON"});
  check_input_error(run_cli(local_args(dir / "missing.txt")), {"missing.txt"});

  spit(dir / "p.txt", "Once\n");
  check_usage_error(run_cli(local_args(dir / "p.txt", {"--resume"})), "--resume");
  check_usage_error(run_cli(local_args(dir / "p.txt", {"--shard", "3/3"})), "--shard");
  check_usage_error(run_cli(local_args(dir / "p.txt", {"-f", "xml"})), "unknown output format 'xml'");
  check_usage_error(run_cli(local_args(dir / "p.txt", {"-p", "Once"})), "prompt");
  check_usage_error(run_cli({"local", "--model", stories_dir(), "-n", "2"}), "prompt");
}
