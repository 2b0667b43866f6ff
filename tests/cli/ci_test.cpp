// Results a CI job can trust, end to end on stories260K: shards from scheduler variables merge
// into the single run (checked with pizza diff), --resume refuses other run parameters,
// --retry-failed reruns failures, every batch output satisfies the schema, and pizza render
// shows a saved result as the run did.
#include <catch2/catch.hpp>

#include <set>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

const std::string kSchema = std::string(PIZZA_SOURCE_DIR) + "/lib/report/attribution.schema.json";

std::vector<std::string> local_batch(const std::filesystem::path& prompts, const std::filesystem::path& out,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"local", "--model", stories_dir(), "--prompts", prompts.string(), "-n", "3", "--quiet",
                                "-o", out.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

void check_schema(const std::filesystem::path& file, size_t records) {
  const auto res = validate_json_schema(kSchema, file);
  INFO(file << ": " << res.output);
  CHECK(res.exit_code == 0);
  CHECK(res.output.find("valid: " + std::to_string(records)) != std::string::npos);
}

// pizza diff BASE NEW: exit status and report.
CliResult diff(const std::filesystem::path& base, const std::filesystem::path& fresh) {
  return run_cli({"diff", base.string(), fresh.string()});
}

}  // namespace

TEST_CASE("cli: shard auto from Kubernetes and Slurm variables merges into the single run", "[cli][ci]") {
  TempDir dir;
  write_shard_prompts(dir / "p.txt");
  auto r = run_cli(local_batch(dir / "p.txt", dir / "whole.jsonl"));
  REQUIRE(r.exit_code == 0);

  // Kubernetes Indexed Job with completions: 3 (the count passed in), as in the README manifest.
  std::string k8s;
  for (int i = 0; i < 3; ++i) {
    const auto out = dir / ("k8s-" + std::to_string(i) + ".jsonl");
    r = run_cli(local_batch(dir / "p.txt", out, {"--shard", "auto/3"}), "", {"JOB_COMPLETION_INDEX=" + std::to_string(i)});
    INFO("k8s " << i << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    k8s += slurp(out);
  }
  spit(dir / "k8s.jsonl", k8s);
  // Slurm --array=1-3 (task ids from 1), the count from SLURM_ARRAY_TASK_COUNT.
  std::string slurm;
  for (int id = 1; id <= 3; ++id) {
    const auto out = dir / ("slurm-" + std::to_string(id) + ".jsonl");
    r = run_cli(local_batch(dir / "p.txt", out, {"--shard", "auto"}), "",
                {"SLURM_ARRAY_TASK_ID=" + std::to_string(id), "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=1",
                 "SLURM_ARRAY_TASK_MAX=3"});
    INFO("slurm " << id << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    slurm += slurp(out);
  }
  spit(dir / "slurm.jsonl", slurm);
  CHECK(lines_of(slurp(dir / "k8s-1.jsonl")).size() == 2);  // records 1 and 4

  for (const char* merged : {"k8s.jsonl", "slurm.jsonl"}) {
    const auto d = diff(dir / "whole.jsonl", dir / merged);
    INFO(merged << ": " << d.out << d.err);
    CHECK(d.exit_code == 0);
    CHECK(d.out.find("no differences in 7 records") != std::string::npos);
    check_schema(dir / merged, 7);
  }
  // A missing count, or none of the variables, is a usage error naming them.
  check_usage_error(run_cli(local_batch(dir / "p.txt", dir / "x.jsonl", {"--shard", "auto"}), "", {"JOB_COMPLETION_INDEX=0"}),
                    "PIZZA_SHARD_COUNT");
  check_usage_error(run_cli(local_batch(dir / "p.txt", dir / "x.jsonl", {"--shard", "auto/3"})), "JOB_COMPLETION_INDEX");
  check_usage_error(run_cli(local_batch(dir / "p.txt", dir / "x.jsonl", {"--shard", "auto/2"}), "",
                            {"SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_COUNT=3"}),
                    "SLURM_ARRAY_TASK_COUNT=3");
}

TEST_CASE("cli: resume refuses other run parameters and retry-failed reruns the failures", "[cli][ci]") {
  TempDir dir;
  const auto out = dir / "out.jsonl";
  // Record b's prompt is longer than the model's context: it fails when it runs.
  spit(dir / "two.jsonl", "{\"id\":\"a\",\"prompt\":\"Lily saw\"}\n{\"id\":\"b\",\"prompt\":\"" + std::string(3000, 'a') + "\"}\n");
  spit(dir / "three.jsonl", "{\"id\":\"a\",\"prompt\":\"Lily saw\"}\n{\"id\":\"b\",\"prompt\":\"Tom liked\"}\n"
                            "{\"id\":\"c\",\"prompt\":\"The cat\"}\n");
  // The output holds a result and an error record.
  auto r = run_cli(local_batch(dir / "two.jsonl", out, {"--norm", "l1"}));
  CHECK(r.exit_code == 1);
  check_schema(out, 2);
  const std::string before = slurp(out);

  r = run_cli(local_batch(dir / "three.jsonl", out, {"--norm", "l2", "--resume"}));
  check_input_error(r, {"out.jsonl: --resume: record \"a\" there has parameters.norm \"l1\"", "\"l2\"", "--force"});
  CHECK(slurp(out) == before);

  // The same parameters: c is added, b's error stays (and keeps the exit status 1).
  r = run_cli(local_batch(dir / "three.jsonl", out, {"--norm", "l1", "--resume"}));
  CHECK(r.exit_code == 1);
  CHECK(lines_of(slurp(out)).size() == 3);
  // --retry-failed runs b again, now that its prompt record is fixed; each id once.
  r = run_cli(local_batch(dir / "three.jsonl", out, {"--norm", "l1", "--resume", "--retry-failed"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto lines = lines_of(slurp(out));
  REQUIRE(lines.size() == 3);
  CHECK(lines[2].rfind("{\"id\":\"b\",\"schema_version\"", 0) == 0);
  check_schema(out, 3);
  // --force mixes runs knowingly.
  spit(dir / "four.jsonl", slurp(dir / "three.jsonl") + "{\"id\":\"d\",\"prompt\":\"Ben ran\"}\n");
  r = run_cli(local_batch(dir / "four.jsonl", out, {"--norm", "l2", "--resume", "--force"}));
  CHECK(r.exit_code == 0);
  CHECK(lines_of(slurp(out)).size() == 4);
  check_usage_error(run_cli(local_batch(dir / "four.jsonl", out, {"--force"})), "--resume");
}

TEST_CASE("cli: pizza render shows a saved result as the run did", "[cli][ci]") {
  TempDir dir;
  const std::vector<std::string> run{"local", "--model", stories_dir(), "-p", "Once upon a time", "-n", "4", "--quiet",
                                     "--method", "occlusion", "--unit", "word", "--metric", "prob-diff,logprob-diff"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = run;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const auto direct = run_cli(with({"--format", "table", "--color", "never"}));
  REQUIRE(direct.exit_code == 0);
  REQUIRE(run_cli(with({"-o", (dir / "saved.json").string()})).exit_code == 0);
  const auto shown = run_cli({"render", (dir / "saved.json").string(), "--format", "table", "--color", "never"});
  INFO(shown.err);
  REQUIRE(shown.exit_code == 0);
  CHECK(shown.out == direct.out);
  // CSV and HTML of the saved file are those of the run (the HTML page embeds the result,
  // timings included, so it is compared through the CSV only).
  const auto direct_csv = run_cli(with({"--format", "csv"}));
  CHECK(run_cli({"render", (dir / "saved.json").string(), "-f", "csv"}).out == direct_csv.out);

  // A batch: a table per record, one CSV with ids, one HTML page with a record selector.
  spit(dir / "p.txt", "Once upon a time\nLily saw\n");
  REQUIRE(run_cli(local_batch(dir / "p.txt", dir / "batch.jsonl")).exit_code == 0);
  const auto table = run_cli({"render", (dir / "batch.jsonl").string(), "--color", "never"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.rfind("record \"1\":\n", 0) == 0);
  CHECK(table.out.find("\nrecord \"2\":\n") != std::string::npos);
  const auto csv = run_cli({"render", (dir / "batch.jsonl").string(), "-f", "csv"});
  CHECK(csv.out.rfind("id,output_index,", 0) == 0);
  REQUIRE(run_cli({"render", (dir / "batch.jsonl").string(), "-o", (dir / "batch.html").string()}).exit_code == 0);
  const std::string html = slurp(dir / "batch.html");
  CHECK(html.find("id=\"record-select\"") != std::string::npos);
  check_input_error(run_cli({"render", (dir / "missing.json").string()}), {"missing.json"});
}
