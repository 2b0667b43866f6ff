// Torch-free tests of batch mode: prompt files, shards, the JSONL output and --resume, and the
// batch loop with a stand-in per-record function (the CLI tests run the real model).
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "batch/output.h"
#include "batch/records.h"
#include "batch/runner.h"
#include "batch/shard.h"
#include "support/paths.h"
#include "util/error.h"

using namespace pizza::batch;
using pizza::InputError;
using pizza::UsageError;
using Catch::Matchers::Contains;
using pizza::test::slurp;
using pizza::test::spit;

namespace {

std::vector<Record> jsonl(std::string_view text) { return parse_prompts(text, PromptFormat::jsonl, "p.jsonl"); }

// A stand-in for the model: the "result" echoes the prompt, and a prompt "boom" throws.
std::string fake_result(const Record& r) {
  if (r.prompt == "boom") throw std::runtime_error("exploded\nbacktrace line that must not leak");
  return "{\n  \"prompt\": \"" + r.prompt + "\",\n  \"n\": [1, 2]\n}\n";
}

std::vector<Record> numbered(size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) text += "prompt " + std::to_string(i) + "\n";
  return parse_prompts(text, PromptFormat::text, "p.txt");
}

}  // namespace

TEST_CASE("text prompt files: one prompt per line, blank lines skipped, id = line number") {
  auto recs = parse_prompts("Once upon\r\n\n   \nthe cat sat\nlast line without newline", PromptFormat::text, "p.txt");
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].id == "1");
  CHECK(recs[0].prompt == "Once upon");  // the \r of a CRLF file is not part of the prompt
  CHECK(recs[1].id == "4");
  CHECK(recs[1].prompt == "the cat sat");
  CHECK(recs[2].id == "5");
  CHECK(recs[2].prompt == "last line without newline");
  for (size_t i = 0; i < recs.size(); ++i) CHECK(recs[i].index == i);
  CHECK_FALSE(recs[0].target_text);
  CHECK(recs[0].overrides.empty());
}

TEST_CASE("jsonl prompt files: id, prompt, target_text and overrides in file order") {
  auto recs = jsonl(
      "{\"id\": \"a\", \"prompt\": \"Hi \\\"there\\\"\", \"target_text\": \" you\", \"max_new_tokens\": 4, "
      "\"method\": \"occlusion\", \"abs\": true, \"static_threshold\": 0.25, \"spans\": [\"0:2\", \"3:5\"]}\n"
      "\n"
      "{\"id\": 17, \"prompt\": \"B\"}\n"
      "{\"prompt\": \"no id\"}\n");
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].id == "a");
  CHECK(recs[0].prompt == "Hi \"there\"");
  CHECK(recs[0].target_text == " you");
  using KV = std::pair<std::string, std::string>;
  CHECK(recs[0].overrides == std::vector<KV>{{"max_new_tokens", "4"}, {"method", "\"occlusion\""}, {"abs", "true"},
                                             {"static_threshold", "0.25"}, {"spans", "[\"0:2\",\"3:5\"]"}});
  CHECK(recs[1].id == "17");  // an integer id is its decimal text
  CHECK(recs[1].index == 1);
  CHECK(recs[1].line == 3);
  CHECK(recs[2].id == "4");  // no id: the line number, as in text files
}

TEST_CASE("jsonl structural errors name the file and line") {
  auto fails = [](std::string_view text, const std::string& fragment) {
    INFO(text);
    CHECK_THROWS_WITH(jsonl(text), Contains(fragment));
  };
  fails("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":", "p.jsonl:2: invalid JSON");
  fails("[1,2]\n", "p.jsonl:1: expected a JSON object");
  fails("{\"id\":\"a\"}\n", "p.jsonl:1: missing \"prompt\"");
  fails("{\"id\":\"a\",\"prompt\":3}\n", "p.jsonl:1: \"prompt\" must be a string");
  fails("{\"id\":1.5,\"prompt\":\"x\"}\n", "p.jsonl:1: \"id\" must be a string or an integer");
  fails("{\"id\":\"\",\"prompt\":\"x\"}\n", "p.jsonl:1: \"id\" is empty");
  fails("{\"id\":\"a\",\"prompt\":\"x\",\"prompt\":\"y\"}\n", "p.jsonl:1: duplicate key \"prompt\"");
  fails("\n \n", "p.jsonl: no prompts");
}

TEST_CASE("duplicate ids are an error before anything runs") {
  CHECK_THROWS_WITH(jsonl("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"y\"}\n{\"id\":\"a\",\"prompt\":\"z\"}\n"),
                    "p.jsonl:3: duplicate id \"a\" (first on line 1)");
  // 7 and "7" are one id; so is a missing id and the line number it defaults to.
  CHECK_THROWS_WITH(jsonl("{\"id\":7,\"prompt\":\"x\"}\n{\"id\":\"7\",\"prompt\":\"y\"}\n"), Contains("duplicate id \"7\""));
  CHECK_THROWS_WITH(jsonl("{\"id\":\"2\",\"prompt\":\"x\"}\n{\"prompt\":\"y\"}\n"), Contains("p.jsonl:2: duplicate id \"2\""));
  CHECK_THROWS_AS(jsonl("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"x\"}\n"), InputError);
}

TEST_CASE("prompt file format from the extension else from the first byte") {
  CHECK(detect_prompt_format("a.TXT", "{\"x\":1}") == PromptFormat::text);
  CHECK(detect_prompt_format("a.jsonl", "plain") == PromptFormat::jsonl);
  CHECK(detect_prompt_format("a.ndjson", "") == PromptFormat::jsonl);
  CHECK(detect_prompt_format("", "\n  {\"prompt\":\"x\"}") == PromptFormat::jsonl);
  CHECK(detect_prompt_format("prompts", "Once upon a time") == PromptFormat::text);
}

TEST_CASE("load_prompts reads files and reports missing ones") {
  pizza::test::TempDir dir;
  spit(dir / "p.txt", "a\nb\n");
  CHECK(load_prompts((dir / "p.txt").string()).size() == 2);
  CHECK_THROWS_WITH(load_prompts((dir / "missing.jsonl").string()), Contains("missing.jsonl"));
}

TEST_CASE("override values become command-line values") {
  CHECK(json_to_cli_values("k", "\"word\"") == std::vector<std::string>{"word"});
  CHECK(json_to_cli_values("k", "8") == std::vector<std::string>{"8"});
  CHECK(json_to_cli_values("k", "-3") == std::vector<std::string>{"-3"});
  CHECK(json_to_cli_values("k", "0.1") == std::vector<std::string>{"0.1"});
  CHECK(json_to_cli_values("k", "false") == std::vector<std::string>{"false"});
  CHECK(json_to_cli_values("k", "[\"a\",2]") == std::vector<std::string>{"a", "2"});
  CHECK_THROWS_WITH(json_to_cli_values("k", "null"), Contains("override \"k\""));
  CHECK_THROWS_WITH(json_to_cli_values("k", "{\"a\":1}"), Contains("override \"k\""));
  CHECK_THROWS_AS(json_to_cli_values("k", "[[1]]"), InputError);
}

namespace {

const pizza::batch::EnvLookup no_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };

pizza::batch::EnvLookup env_of(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional(it->second);
  };
}

}  // namespace

TEST_CASE("shard i/n: record k belongs to shard k % n") {
  const Shard s = parse_shard("1/3", no_env);
  CHECK(s.index == 1);
  CHECK(s.count == 3);
  // Records 1, 4, 7 of 0..8.
  std::vector<size_t> mine;
  for (size_t k = 0; k < 9; ++k)
    if (s.contains(k)) mine.push_back(k);
  CHECK(mine == std::vector<size_t>{1, 4, 7});
  CHECK(parse_shard("0/1", no_env).contains(5));
  for (const char* bad : {"3/3", "1", "a/3", "1/0", "-1/3", "1/3x", "/3", ""})
    CHECK_THROWS_AS(parse_shard(bad, no_env), UsageError);
  CHECK_THROWS_WITH(parse_shard("3/3", no_env), Contains("'3/3'"));
}

TEST_CASE("record lines: compact JSON with id first and error lines") {
  CHECK(record_line("a\"b", "{\n  \"x\": \"s p\",\n  \"y\": [1, 2]\n}\n") == "{\"id\":\"a\\\"b\",\"x\":\"s p\",\"y\":[1,2]}");
  CHECK(record_line("e", "{ }") == "{\"id\":\"e\"}");
  CHECK_THROWS_AS(record_line("a", "[1]"), InputError);
  CHECK(error_line("7", "bad \"x\"") == "{\"id\":\"7\",\"error\":\"bad \\\"x\\\"\"}");
}

TEST_CASE("resume repairs a torn last line and collects the done ids") {
  pizza::test::TempDir dir;
  const auto out = dir / "out.jsonl";
  CHECK(prepare_resume(out).done_ids.empty());  // no file yet: nothing done

  const std::string complete = "{\"id\":\"1\",\"x\":1}\n{\"id\":\"2\",\"error\":\"e\"}\n";
  spit(out, complete + "{\"id\":\"3\",\"x\":[1,2");  // killed mid-write
  ResumeState st = prepare_resume(out);
  CHECK(st.done_ids == std::set<std::string>{"1", "2"});
  CHECK(st.failed_ids == std::set<std::string>{"2"});
  CHECK(st.lines == 2);
  CHECK(st.dropped_bytes == std::string("{\"id\":\"3\",\"x\":[1,2").size());
  CHECK(slurp(out) == complete);

  spit(out, "{\"id\":\"1\"");  // torn first line: the file becomes empty
  CHECK(prepare_resume(out).done_ids.empty());
  CHECK(slurp(out).empty());

  spit(out, "{\"id\":\"1\"}\nnot json\n");
  CHECK_THROWS_WITH(prepare_resume(out), Contains("out.jsonl:2: not a batch record"));
  spit(out, "{\"name\":\"x\"}\n");
  CHECK_THROWS_WITH(prepare_resume(out), Contains("out.jsonl:1:"));
}

TEST_CASE("the batch loop writes one line per record and a failing record does not stop it") {
  pizza::test::TempDir dir;
  const auto out = dir / "out.jsonl";
  auto recs = parse_prompts("one\nboom\nthree\n", PromptFormat::text, "p.txt");
  RunSummary s = run_records(recs, {out.string(), false, {}, false}, fake_result);
  CHECK(s.selected == 3);
  CHECK(s.ok == 2);
  CHECK(s.failed == 1);
  CHECK(slurp(out) ==
        "{\"id\":\"1\",\"prompt\":\"one\",\"n\":[1,2]}\n"
        "{\"id\":\"2\",\"error\":\"exploded\"}\n"
        "{\"id\":\"3\",\"prompt\":\"three\",\"n\":[1,2]}\n");
  // Without --resume an existing output is replaced, not appended to.
  run_records(recs, {out.string(), false, {}, false}, fake_result);
  const std::string again = slurp(out);
  CHECK(std::count(again.begin(), again.end(), '\n') == 3);
}

TEST_CASE("resume after a kill mid-write gives the uninterrupted output") {
  pizza::test::TempDir dir;
  const auto recs = numbered(10);
  const auto full = dir / "full.jsonl", part = dir / "part.jsonl";
  run_records(recs, {full.string(), false, {}, false}, fake_result);
  const std::string expected = slurp(full);

  // The first 4 lines complete, the 5th torn in the middle.
  size_t cut = 0;
  for (int i = 0; i < 4; ++i) cut = expected.find('\n', cut) + 1;
  spit(part, expected.substr(0, cut + 7));
  size_t calls = 0;
  RunSummary s = run_records(recs, {part.string(), true, {}, false}, [&](const Record& r) {
    ++calls;
    return fake_result(r);
  });
  CHECK(s.skipped == 4);
  CHECK(calls == 6);
  CHECK(s.dropped_bytes == 7);
  CHECK(slurp(part) == expected);
  // Resuming a finished run does nothing.
  s = run_records(recs, {part.string(), true, {}, false}, [&](const Record&) -> std::string { throw std::logic_error("ran"); });
  CHECK(s.skipped == 10);
  CHECK(slurp(part) == expected);
}

TEST_CASE("resume counts the error records already in the output as failed") {
  pizza::test::TempDir dir;
  const auto out = dir / "out.jsonl";
  const auto recs = parse_prompts("boom\ntwo\n", PromptFormat::text, "p.txt");
  CHECK(run_records(recs, {out.string(), false, {}, false}, fake_result).failed == 1);
  RunSummary s = run_records(recs, {out.string(), true, {}, false}, fake_result);
  CHECK(s.skipped == 2);
  CHECK(s.failed == 1);  // still failed: the exit status must not turn 0 on a resume
}

TEST_CASE("shard outputs together are the unsharded output") {
  pizza::test::TempDir dir;
  const auto recs = numbered(11);
  const auto full = dir / "full.jsonl";
  run_records(recs, {full.string(), false, {}, false}, fake_result);
  auto lines_of = [](const std::string& text) {
    std::multiset<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.insert(l);
    return lines;
  };
  std::multiset<std::string> merged;
  size_t selected = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto out = dir / ("shard" + std::to_string(i) + ".jsonl");
    selected += run_records(recs, {out.string(), false, {i, 3}, false}, fake_result).selected;
    merged.merge(lines_of(slurp(out)));
  }
  CHECK(selected == 11);
  CHECK(merged == lines_of(slurp(full)));
  // Shard 2/3 of records 0..10 holds records 2, 5, 8 (ids are 1-based line numbers 3, 6, 9).
  CHECK(slurp(dir / "shard2.jsonl").find("{\"id\":\"3\"") == 0);
  CHECK(lines_of(slurp(dir / "shard2.jsonl")).size() == 3);
}

TEST_CASE("resume without an output file is a usage error") {
  CHECK_THROWS_AS(run_records(numbered(1), {"", true, {}, false}, fake_result), UsageError);
}

TEST_CASE("shard auto reads a Kubernetes Indexed Job or a Slurm array") {
  // Kubernetes: the index from JOB_COMPLETION_INDEX, the count from auto/N or PIZZA_SHARD_COUNT.
  Shard k = parse_shard("auto/4", env_of({{"JOB_COMPLETION_INDEX", "2"}}));
  CHECK((k.index == 2 && k.count == 4));
  k = parse_shard("auto", env_of({{"JOB_COMPLETION_INDEX", "0"}, {"PIZZA_SHARD_COUNT", "3"}}));
  CHECK((k.index == 0 && k.count == 3));
  // Slurm: --array=0-3, --array=1-4 and --array=0-6:2 all give shards 0..3 of 4.
  Shard s = parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}));
  CHECK((s.index == 3 && s.count == 4));
  s = parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "1"}}));
  CHECK((s.index == 0 && s.count == 4));
  s = parse_shard("auto/4", env_of({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"},
                                    {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_STEP", "2"}}));
  CHECK((s.index == 2 && s.count == 4));
}

TEST_CASE("shard auto: missing or inconsistent variables are usage errors naming them") {
  const auto error = [](std::string_view spec, std::map<std::string, std::string, std::less<>> vars) {
    try {
      parse_shard(spec, env_of(std::move(vars)));
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    FAIL("no UsageError for " << spec);
    return std::string();
  };
  CHECK_THAT(error("auto", {}), Contains("neither JOB_COMPLETION_INDEX") && Contains("SLURM_ARRAY_TASK_ID"));
  CHECK_THAT(error("auto", {{"JOB_COMPLETION_INDEX", "1"}}), Contains("--shard auto/N") && Contains("PIZZA_SHARD_COUNT"));
  CHECK_THAT(error("auto/2", {{"JOB_COMPLETION_INDEX", "2"}}), Contains("index 2 is not below the count 2"));
  CHECK_THAT(error("auto/2", {{"JOB_COMPLETION_INDEX", "1"}, {"PIZZA_SHARD_COUNT", "3"}}),
             Contains("auto/2 but PIZZA_SHARD_COUNT=3"));
  CHECK_THAT(error("auto", {{"JOB_COMPLETION_INDEX", "x"}}), Contains("JOB_COMPLETION_INDEX='x'"));
  CHECK_THAT(error("auto", {{"SLURM_ARRAY_TASK_ID", "1"}}), Contains("SLURM_ARRAY_TASK_COUNT is not"));
  CHECK_THAT(error("auto/3", {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}),
             Contains("auto/3 but SLURM_ARRAY_TASK_COUNT=4"));
  CHECK_THAT(error("auto", {{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_STEP", "2"}}),
             Contains("SLURM_ARRAY_TASK_ID=3") && Contains("not a task of the array"));
  CHECK_THAT(error("auto", {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "2"}, {"JOB_COMPLETION_INDEX", "0"}}),
             Contains("both"));
  CHECK_THAT(error("auto/0", {{"JOB_COMPLETION_INDEX", "0"}}), Contains("'auto/0'"));
}

namespace {

// A minimal attribution result (what pizza diff reads) made with run parameter norm = `norm`,
// or the record's own "norm" override.
std::string result_with_norm(const Record& r, const std::string& norm) {
  std::string n = norm;
  for (const auto& [key, json] : r.overrides)
    if (key == "norm") n = json.substr(1, json.size() - 2);
  return R"({"schema_version":1,"model":{"path":"m","model_type":"llama"},"method":"saliency","parameters":{"norm":")" + n +
         R"("},"inputs":[{"text":"a"}],"outputs":[{"id":1,"text":"b"}],"matrix_name":"saliency","matrix":[[0.5]]})";
}

}  // namespace

TEST_CASE("resume refuses an output made with other run parameters unless forced") {
  pizza::test::TempDir dir;
  const auto out = dir / "out.jsonl";
  const auto recs = jsonl("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"y\",\"norm\":\"l1\"}\n"
                          "{\"id\":\"c\",\"prompt\":\"z\"}\n{\"id\":\"d\",\"prompt\":\"w\",\"norm\":\"l1\"}\n");
  // A run with norm l2 stopped after two records.
  const auto l2 = [](const Record& r) { return result_with_norm(r, "l2"); };
  run_records(std::span(recs).first(2), {out.string(), false, {}, false}, l2);
  const std::string two = slurp(out);

  // Resumed with norm l1: record c (no overrides, like a) would be l1 where a is l2.
  const auto l1 = [](const Record& r) { return result_with_norm(r, "l1"); };
  try {
    run_records(recs, {out.string(), true, {}, false}, l1);
    FAIL("no InputError");
  } catch (const InputError& e) {
    CHECK_THAT(e.what(), Contains("out.jsonl: --resume: record \"a\" there has parameters.norm \"l2\", this run gives "
                                  "record \"c\" \"l1\"") && Contains("--force"));
  }
  CHECK(slurp(out) == two);  // nothing appended
  // The same parameters resume; records whose overrides set norm compare among themselves.
  RunSummary s = run_records(recs, {out.string(), true, {}, false}, l2);
  CHECK(s.ok == 2);
  // --force mixes them knowingly.
  run_records(std::span(recs).first(2), {out.string(), false, {}, false}, l2);
  s = run_records(recs, {out.string(), true, {}, false, false, true}, l1);
  CHECK(s.ok == 2);
  CHECK_THROWS_AS(run_records(recs, {out.string(), false, {}, false, false, true}, l1), UsageError);
}

TEST_CASE("retry-failed runs the error records again and leaves each id once") {
  pizza::test::TempDir dir;
  const auto out = dir / "out.jsonl";
  const auto recs = parse_prompts("one\nboom\nthree\n", PromptFormat::text, "p.txt");
  CHECK(run_records(recs, {out.string(), false, {}, false}, fake_result).failed == 1);
  // Without --retry-failed the error stays; with it, record 2 runs again (and now works).
  size_t calls = 0;
  const auto fixed = [&](const Record& r) {
    ++calls;
    Record fixed_record = r;
    if (r.prompt == "boom") fixed_record.prompt = "fixed";
    return fake_result(fixed_record);
  };
  CHECK(run_records(recs, {out.string(), true, {}, false}, fixed).failed == 1);
  CHECK(calls == 0);
  RunSummary s = run_records(recs, {out.string(), true, {}, false, true}, fixed);
  CHECK(calls == 1);
  CHECK(s.retried == 1);
  CHECK(s.failed == 0);
  CHECK(s.skipped == 2);
  CHECK(slurp(out) ==
        "{\"id\":\"1\",\"prompt\":\"one\",\"n\":[1,2]}\n"
        "{\"id\":\"3\",\"prompt\":\"three\",\"n\":[1,2]}\n"
        "{\"id\":\"2\",\"prompt\":\"fixed\",\"n\":[1,2]}\n");
  CHECK_THROWS_AS(run_records(recs, {out.string(), false, {}, false, true}, fixed), UsageError);
}
