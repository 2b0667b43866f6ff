// `pizza diff` library: result files written by hand (schema-valid records, see the first
// test), compared with the tolerance and top-k rules worked out in the comments.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "diff/diff.h"
#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"

namespace {

using pizza::diff::Kind;
using pizza::diff::Options;
using pizza::diff::Report;

// Prompt "The cat sat" as three token units; two generated tokens " on" " the".
const std::string kInputs =
    R"([{"index":0,"text":"The","token_ids":[464],"span":[0,3],"special":false,"generated":false},)"
    R"({"index":1,"text":" cat","token_ids":[3797],"span":[3,7],"special":false,"generated":false},)"
    R"({"index":2,"text":" sat","token_ids":[3332],"span":[7,11],"special":false,"generated":false}])";
const std::string kOutputs =
    R"([{"index":0,"id":319,"text":" on","prob":0.5},{"index":1,"id":262,"text":" the","prob":0.25}])";
// Row 0 ranks inputs 0 > 1 > 2, row 1 ranks 1 > 2 > 0.
const std::string kMatrix = "[[0.5,0.25,0.125],[0.0625,0.5,0.25]]";
const std::string kTimings = R"({"load_ms":12.5,"generate_ms":40,"attribute_ms":100})";

struct Parts {
  std::string id{};  // empty: no "id" field (a plain document)
  std::string parameters = "{}";
  std::string model = "models/gpt2";
  std::string outputs = kOutputs;
  std::string matrix = kMatrix;
  std::string timings = kTimings;
  std::string extra_fields{};  // e.g. R"("matrices":{...},)"
  int schema_version = 1;
};

// One result record on one line, in the writer's field order.
std::string record(const Parts& p) {
  std::string s = "{";
  if (!p.id.empty()) s += R"("id":")" + p.id + R"(",)";
  s += R"("schema_version":)" + std::to_string(p.schema_version);
  s += R"(,"tool":{"name":"pizza","version":"0.1.0"},"model":{"path":")" + p.model + R"(","model_type":"gpt2"},)"
       R"("engine":"local","method":"saliency","target":"prob","unit":"token","parameters":)" + p.parameters +
       R"(,"prompt":"The cat sat","output_text":" on the","inputs":)";
  s += kInputs;
  s += R"(,"outputs":)" + p.outputs + R"(,"matrix_name":"saliency","matrix":)" + p.matrix + ",";
  s += p.extra_fields;
  s += R"("totals":[0.28125,0.375,0.1875],"row_stats":{},"extra":{},"timings":)" + p.timings;
  s += R"(,"run":{"device":"cpu","dtype":"float32","threads":4,"blas":"OpenBLAS"}})";
  return s;
}

std::string lines(std::initializer_list<std::string> records) {
  std::string s;
  for (const auto& r : records) s += r + "\n";
  return s;
}

struct Files {
  pizza::test::TempDir dir;
  std::filesystem::path base = dir / "base.jsonl";
  std::filesystem::path fresh = dir / "new.jsonl";
  Files(const std::string& base_text, const std::string& new_text) {
    pizza::write_file_atomic(base, base_text);
    pizza::write_file_atomic(fresh, new_text);
  }
  Report compare(const Options& opt = {}) const {
    return pizza::diff::compare(pizza::diff::load_results(base), pizza::diff::load_results(fresh), opt);
  }
};

pizza::diff::Finding only_finding(const Report& r) {  // a copy: callers pass temporaries
  REQUIRE(r.records.size() == 1);
  REQUIRE(r.records[0].findings.size() == 1);
  return r.records[0].findings[0];
}

std::string load_error(const std::string& contents) {
  pizza::test::TempDir dir;
  auto path = dir / "new.jsonl";
  pizza::write_file_atomic(path, contents);
  try {
    pizza::diff::load_results(path);
  } catch (const pizza::InputError& e) {
    return e.what();
  }
  FAIL("no InputError for: " << contents.substr(0, 80));
  return {};
}

}  // namespace

TEST_CASE("hand-written fixture records satisfy the attribution schema", "[diff]") {
  // Checked by python3-jsonschema (independent of this code) so the tests feed diff what the
  // writer produces; "id" is the batch-mode addition, so it is left out here.
  pizza::test::TempDir dir;
  auto path = dir / "doc.json";
  pizza::write_file_atomic(path, record({.extra_fields = R"("matrices":{"saliency":)" + kMatrix +
                                                         R"(,"grad_norm":[[1,2,3],[4,5,6]]},)"}));
  const auto res = pizza::test::validate_json_schema(PIZZA_SOURCE_DIR "/lib/report/attribution.schema.json", path);
  INFO(res.output);
  CHECK(res.exit_code == 0);
}

TEST_CASE("identical files are the same, as JSON and as JSONL", "[diff]") {
  const std::string doc = record({});
  Files json(doc, doc);
  auto r = json.compare();
  CHECK(r.same());
  CHECK(r.records_compared == 1);
  CHECK(pizza::diff::render_text(r) ==
        "diff: no differences in 1 record (atol 0.0001, rtol 0.001, top-k 3)\n");

  const std::string batch = lines({record({.id = "a"}), record({.id = "b"})});
  Files jsonl(batch, batch);
  auto rl = jsonl.compare();
  CHECK(rl.same());
  CHECK(rl.records_compared == 2);
}

TEST_CASE("a score beyond tolerance is drift naming the cell", "[diff]") {
  // Record b, output 1 (" the"), input 2 (" sat"): 0.25 -> 0.26. Tolerance there is
  // 1e-4 + 1e-3 * 0.25 = 3.5e-4 < 0.01. Row 1's ranking (1 > 2 > 0) is unchanged.
  Files f(lines({record({.id = "a"}), record({.id = "b"})}),
          lines({record({.id = "a"}), record({.id = "b", .matrix = "[[0.5,0.25,0.125],[0.0625,0.5,0.26]]"})}));
  auto r = f.compare();
  CHECK_FALSE(r.same());
  CHECK(r.records_compared == 2);
  CHECK(r.records[0].id == "b");
  const auto x = only_finding(r);
  CHECK(x.kind == Kind::score);
  CHECK(x.matrix == "saliency");
  CHECK(x.output_index == 1u);
  CHECK(x.output_token == " the");
  CHECK(x.input_index == 2u);
  CHECK(x.input_token == " sat");
  CHECK(std::get<double>(x.old_value) == 0.25);
  CHECK(std::get<double>(x.new_value) == 0.26);

  const std::string text = pizza::diff::render_text(r);
  CHECK_THAT(text, Catch::Contains(R"(record "b":)"));
  CHECK_THAT(text, Catch::Contains(R"(score [saliency] output 1 " the" × input 2 " sat": 0.25 → 0.26)"));
  CHECK_THAT(text, Catch::EndsWith(
                       "diff: 1 difference in 1 of 2 records (atol 0.0001, rtol 0.001, top-k 3)\n"));

  // The JSON report, read back with simdjson.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(pizza::diff::render_json(r)).get(doc) == simdjson::SUCCESS);
  CHECK(doc["same"].get_bool().value() == false);
  CHECK(doc["records_compared"].get_int64().value() == 2);
  CHECK(doc["records_differing"].get_int64().value() == 1);
  auto finding = doc["findings"].at(0);
  CHECK(finding["id"].get_string().value() == "b");
  CHECK(finding["kind"].get_string().value() == "score");
  CHECK(finding["output_index"].get_int64().value() == 1);
  CHECK(finding["input_index"].get_int64().value() == 2);
  CHECK(finding["input_token"].get_string().value() == " sat");
  CHECK(finding["old"].get_double().value() == 0.25);
  CHECK(finding["new"].get_double().value() == 0.26);
}

TEST_CASE("a score within tolerance is the same, just past it is drift", "[diff]") {
  // Same cell, tolerance 3.5e-4: a change of 3e-4 passes, 4e-4 does not.
  const std::string base = record({});
  Files within(base, record({.matrix = "[[0.5,0.25,0.125],[0.0625,0.5,0.2503]]"}));
  CHECK(within.compare().same());
  Files beyond(base, record({.matrix = "[[0.5,0.25,0.125],[0.0625,0.5,0.2504]]"}));
  auto r = beyond.compare();
  CHECK(only_finding(r).kind == Kind::score);
  CHECK(r.records[0].id.empty());  // a plain document is the record with id ""

  // A looser rtol admits it: 1e-4 + 2e-3 * 0.25 = 6e-4 > 4e-4.
  CHECK(beyond.compare({.tolerance = {.rtol = 2e-3}}).same());
}

TEST_CASE("a changed generated token is drift", "[diff]") {
  Files f(record({}), record({.outputs = R"([{"index":0,"id":319,"text":" on","prob":0.5},)"
                                         R"({"index":1,"id":257,"text":" a","prob":0.25}])"}));
  const auto x = only_finding(f.compare());  // scores are not compared across other tokens
  CHECK(x.kind == Kind::output_token);
  CHECK(x.output_index == 1u);
  CHECK(std::get<pizza::OutputToken>(x.old_value).text == " the");
  CHECK(std::get<pizza::OutputToken>(x.old_value).id == 262);
  CHECK(std::get<pizza::OutputToken>(x.new_value).text == " a");
  CHECK(std::get<pizza::OutputToken>(x.new_value).id == 257);

  // Same text, different id: still a different token.
  Files id_only(record({}), record({.outputs = R"([{"index":0,"id":319,"text":" on","prob":0.5},)"
                                               R"({"index":1,"id":999,"text":" the","prob":0.25}])"}));
  CHECK(only_finding(id_only.compare()).kind == Kind::output_token);

  Files fewer(record({}), record({.outputs = R"([{"index":0,"id":319,"text":" on","prob":0.5}])",
                                  .matrix = "[[0.5,0.25,0.125]]"}));
  const auto y = only_finding(fewer.compare());
  CHECK(y.kind == Kind::output_count);
  CHECK(std::get<double>(y.old_value) == 2);
  CHECK(std::get<double>(y.new_value) == 1);
}

TEST_CASE("a top-k swap is drift even when every score is within tolerance", "[diff]") {
  // Row 0: inputs 0 and 1 trade places (0.5, 0.25 -> 0.25, 0.5). With atol 1 no score
  // differs; the top-1 set changes {0} -> {1}, the top-2 set {0, 1} does not.
  Files f(record({}), record({.matrix = "[[0.25,0.5,0.125],[0.0625,0.5,0.25]]"}));
  auto r = f.compare({.tolerance = {.atol = 1}, .top_k = 1});
  const auto x = only_finding(r);
  CHECK(x.kind == Kind::top_k);
  CHECK(x.output_index == 0u);
  using Units = std::vector<pizza::diff::UnitRef>;
  CHECK(std::get<Units>(x.old_value) == Units{{0, "The"}});
  CHECK(std::get<Units>(x.new_value) == Units{{1, " cat"}});
  CHECK_THAT(pizza::diff::render_text(r), Catch::Contains(R"(top-1 [saliency] output 0 " on": {0 "The"} → {1 " cat"})"));

  CHECK(f.compare({.tolerance = {.atol = 1}, .top_k = 2}).same());
  CHECK(f.compare({.tolerance = {.atol = 1}, .top_k = 0}).same());  // check disabled
  // With the default tolerance the two swapped cells are score findings; the top-3 set
  // {0, 1, 2} is unchanged, so there is nothing else.
  auto strict = f.compare();
  REQUIRE(strict.records.size() == 1);
  CHECK(strict.records[0].differences == 2);
}

TEST_CASE("top-k ties break by index and k clamps to the nonzero columns", "[diff]") {
  // Row 0: |-0.5| = |0.5| ties inputs 0 and 1, so top-1 is {0} (lower index) on both sides;
  // the sign flip itself is within atol 2.
  Files tie(record({.matrix = "[[-0.5,0.5,0.125],[0.0625,0.5,0.25]]"}),
            record({.matrix = "[[0.5,-0.5,0.125],[0.0625,0.5,0.25]]"}));
  CHECK(tie.compare({.tolerance = {.atol = 2}, .top_k = 1}).same());
  // Base ties 0.5 / 0.5 (top-1 {0}); new breaks the tie either way by 1e-4.
  const std::string tied = record({.matrix = "[[0.5,0.5,0.125],[0.0625,0.5,0.25]]"});
  Files keeps(tied, record({.matrix = "[[0.5,0.4999,0.125],[0.0625,0.5,0.25]]"}));
  CHECK(keeps.compare({.tolerance = {.atol = 1}, .top_k = 1}).same());
  Files flips(tied, record({.matrix = "[[0.4999,0.5,0.125],[0.0625,0.5,0.25]]"}));
  CHECK(only_finding(flips.compare({.tolerance = {.atol = 1}, .top_k = 1})).kind == Kind::top_k);

  // Row 1 has one nonzero column in both (input 0 follows the row's token and holds 0):
  // top-3 clamps to 1; base {1}, new {1}. Input 2's 0 -> 1e-9 is within tolerance and
  // leaves one side with 2 eligible columns; k stays at min(3, 1, 2) = 1.
  Files clamp(record({.matrix = "[[0.5,0.25,0.125],[0,0.5,0]]"}),
              record({.matrix = "[[0.5,0.25,0.125],[0,0.5,1e-9]]"}));
  CHECK(clamp.compare().same());
}

TEST_CASE("several metrics are compared by name", "[diff]") {
  const auto with_norm = [](const std::string& norm) {
    return record({.extra_fields = R"("matrices":{"saliency":)" + kMatrix + R"(,"grad_norm":)" + norm + "},"});
  };
  Files f(with_norm("[[1,2,3],[4,5,6]]"), with_norm("[[1,2,3],[4,5,7]]"));
  const auto x = only_finding(f.compare());
  CHECK(x.kind == Kind::score);
  CHECK(x.matrix == "grad_norm");
  CHECK(x.output_index == 1u);
  CHECK(x.input_index == 2u);

  Files dropped(with_norm("[[1,2,3],[4,5,6]]"), record({}));
  const auto y = only_finding(dropped.compare());
  CHECK(y.kind == Kind::matrix_missing);
  CHECK(y.matrix == "grad_norm");
}

TEST_CASE("a record missing on either side is drift", "[diff]") {
  Files f(lines({record({.id = "a"}), record({.id = "b"})}), lines({record({.id = "a"})}));
  auto r = f.compare();
  CHECK(r.records_compared == 2);
  CHECK(r.records[0].id == "b");
  CHECK(only_finding(r).kind == Kind::missing_record);
  CHECK_THAT(pizza::diff::render_text(r), Catch::Contains("record \"b\":\n  missing in new\n"));

  Files extra(lines({record({.id = "a"})}), lines({record({.id = "a"}), record({.id = "c"})}));
  auto e = extra.compare();
  CHECK(e.records_compared == 2);
  CHECK(e.records[0].id == "c");
  CHECK_THAT(pizza::diff::render_text(e), Catch::Contains("missing in base"));
}

TEST_CASE("error records: failing in both runs is a finding unless allowed; a new failure is drift", "[diff]") {
  const std::string failed = R"({"id":"b","error":"prompt too long"})";
  Files both(lines({record({.id = "a"}), failed}), lines({record({.id = "a"}), R"({"id":"b","error":"other words"})"}));
  // A record that never produced a result checks nothing: CI must not pass on it silently.
  const auto f = only_finding(both.compare());
  CHECK(f.kind == Kind::failed);
  CHECK(std::get<std::string>(f.new_value) == "other words");
  CHECK_THAT(pizza::diff::render_text(both.compare()), Catch::Contains("failed in both runs"));
  CHECK(both.compare({.allow_failed = true}).same());

  Files broke(lines({record({.id = "a"}), record({.id = "b"})}), lines({record({.id = "a"}), failed}));
  const auto x = only_finding(broke.compare());
  CHECK(x.kind == Kind::error_changed);
  CHECK(std::holds_alternative<std::monostate>(x.old_value));
  CHECK(std::get<std::string>(x.new_value) == "prompt too long");
}

TEST_CASE("timings and run details are ignored", "[diff]") {
  std::string fresh = record({.timings = R"({"load_ms":999,"generate_ms":1,"attribute_ms":0.5})"});
  const std::string run = R"("threads":4,"blas":"OpenBLAS")";
  fresh.replace(fresh.find(run), run.size(), R"("threads":16,"blas":"MKL")");
  Files f(record({}), fresh);
  CHECK(f.compare().same());
}

TEST_CASE("JSONL records match by id, not by order", "[diff]") {
  Files f(lines({record({.id = "a"}), record({.id = "b"}), record({.id = "c"})}),
          lines({record({.id = "c"}), record({.id = "a"}), "", record({.id = "b"})}));
  auto r = f.compare();
  CHECK(r.same());
  CHECK(r.records_compared == 3);
}

TEST_CASE("null and infinite scores compare exactly", "[diff]") {
  // Result files from before results had to be finite spell NaN as null and +-inf as +-1e999.
  const std::string special = "[[null,1e999,-1e999],[0.0625,0.5,0.25]]";
  Files same(record({.matrix = special}), record({.matrix = special}));
  CHECK(same.compare().same());

  Files changed(record({.matrix = special}), record({.matrix = "[[0.5,1e999,0.125],[0.0625,0.5,0.25]]"}));
  auto r = changed.compare({.top_k = 0});
  REQUIRE(r.records.size() == 1);
  const auto& cells = r.records[0].findings;
  REQUIRE(cells.size() == 2);  // null -> 0.5 and -inf -> 0.125, however large the tolerance
  CHECK(cells[0].input_index == 0u);
  CHECK(std::isnan(std::get<double>(cells[0].old_value)));
  CHECK(cells[1].input_index == 2u);
  CHECK(std::get<double>(cells[1].old_value) == -std::numeric_limits<double>::infinity());
  CHECK(changed.compare({.tolerance = {.atol = 1e300}, .top_k = 0}).records[0].differences == 2);
  // The JSON report writes them as null: -1e999 is no JSON number a strict parser accepts.
  const std::string json = pizza::diff::render_json(r);
  CHECK(json.find("1e999") == std::string::npos);
  CHECK(json.find("\"old\": null") != std::string::npos);
  simdjson::dom::parser json_parser;
  CHECK_FALSE(json_parser.parse(json).error());

  // "1e999" inside a string stays text; as a number where text belongs it is an error.
  auto text = pizza::diff::parse_results(R"({"id":"x","error":"1e999 [1e999, -1e999]"})", "t.jsonl");
  CHECK(text.records.at(0).error == "1e999 [1e999, -1e999]");
  CHECK_THAT(load_error(R"({"id":"x","error":1e999})" "\n" + record({.id = "y"}) + "\n"),
             Catch::Contains("new.jsonl:1: field \"error\": expected a string"));
}

TEST_CASE("findings beyond the per-record limit are counted, not kept", "[diff]") {
  // All 6 cells grow by 1, which keeps each row's order (and top-3 set): 6 differences,
  // of which 4 are kept.
  Files f(record({}), record({.matrix = "[[1.5,1.25,1.125],[1.0625,1.5,1.25]]"}));
  auto r = f.compare({.max_findings_per_record = 4});
  REQUIRE(r.records.size() == 1);
  CHECK(r.records[0].differences == 6);
  CHECK(r.records[0].findings.size() == 4);
  CHECK_THAT(pizza::diff::render_text(r), Catch::Contains("  … 2 more\n"));
  CHECK_THAT(pizza::diff::render_text(r), Catch::Contains("diff: 6 differences in 1 of 1 record "));
}

TEST_CASE("unreadable or malformed files are errors naming file, line and field", "[diff]") {
  CHECK_THROWS_WITH(pizza::diff::load_results("/nonexistent/base.json"),
                    Catch::Contains("/nonexistent/base.json"));
  CHECK_THAT(load_error(""), Catch::Contains("new.jsonl: empty file"));
  CHECK_THAT(load_error("this is not json\n"), Catch::Contains("new.jsonl:1: not valid JSON"));

  // A pretty-printed document cut short: neither one document nor JSON Lines.
  std::string doc = record({});
  CHECK_THAT(load_error("{\n  " + doc.substr(1, 200)),
             Catch::Contains("new.jsonl: not valid JSON") && Catch::Contains("nor JSON Lines"));

  // JSONL whose last line was truncated (a killed batch run).
  std::string last = record({.id = "b"});
  CHECK_THAT(load_error(record({.id = "a"}) + "\n" + last.substr(0, last.size() / 2)),
             Catch::Contains("/new.jsonl:2: not valid JSON ("));

  CHECK_THAT(load_error(record({.schema_version = 2})),
             Catch::Contains("new.jsonl: field \"schema_version\": is 2, pizza diff reads version 1"));
  CHECK_THAT(load_error(record({.matrix = "[[0.5,0.25,0.125],[0.0625,0.5]]"})),
             Catch::Contains("field \"matrix[1]\": 2 values, expected 3 (one per input)"));
  CHECK_THAT(load_error(record({.matrix = "[[0.5,0.25,0.125]]"})),
             Catch::Contains("field \"matrix\": 1 rows, expected 2 (one per output)"));
  CHECK_THAT(load_error(record({.matrix = R"([[0.5,"x",0.125],[0.0625,0.5,0.25]])"})),
             Catch::Contains("field \"matrix[0][1]\": expected a number or null"));

  std::string no_matrix = record({});
  const std::string key = R"("matrix_name":"saliency","matrix":)" + kMatrix + ",";
  no_matrix.erase(no_matrix.find(key) + std::string(R"("matrix_name":"saliency",)").size(),
                  key.size() - std::string(R"("matrix_name":"saliency",)").size());
  CHECK_THAT(load_error(no_matrix), Catch::Contains("new.jsonl: field \"matrix\": missing"));

  CHECK_THAT(load_error(lines({record({.id = "a"}), record({})})),
             Catch::Contains("new.jsonl:2: field \"id\": missing"));
  CHECK_THAT(load_error(lines({record({.id = "a"}), record({.id = "a"})})),
             Catch::Contains("new.jsonl:2: field \"id\": duplicate id \"a\" (first at line 1)"));
}

TEST_CASE("options are checked", "[diff]") {
  pizza::diff::ResultsFile empty;
  CHECK_THROWS_AS(pizza::diff::compare(empty, empty, {.tolerance = {.atol = -1}}), pizza::UsageError);
  CHECK_THROWS_AS(pizza::diff::compare(empty, empty, {.tolerance = {.rtol = std::nan("")}}), pizza::UsageError);
}

TEST_CASE("outputs without token ids compare by text and --ignore-ids drops ids", "[diff]") {
  // A black-box `pizza api` result has null ids; the `pizza local` equivalent has them.
  const std::string no_ids = R"([{"index":0,"id":null,"text":" on","prob":null},{"index":1,"id":null,"text":" the","prob":null}])";
  Files api(record({}), record({.outputs = no_ids}));
  CHECK(api.compare().same());
  Files api_reverse(record({.outputs = no_ids}), record({}));
  CHECK(api_reverse.compare().same());
  // Text still counts.
  Files other_text(record({}), record({.outputs = R"([{"index":0,"id":null,"text":" in","prob":null},{"index":1,"id":null,"text":" the","prob":null}])"}));
  CHECK(only_finding(other_text.compare()).kind == Kind::output_token);
  // Both sides with ids that differ (another tokenizer's vocabulary): drift unless ignored.
  Files other_ids(record({}), record({.outputs = R"([{"index":0,"id":1,"text":" on","prob":0.5},{"index":1,"id":262,"text":" the","prob":0.25}])"}));
  CHECK(only_finding(other_ids.compare()).kind == Kind::output_token);
  CHECK(other_ids.compare({.ignore_ids = true}).same());
}

TEST_CASE("changed run parameters and model are reported before the findings", "[diff]") {
  Files f(lines({record({.id = "a", .parameters = R"({"norm":"l1","abs":true})"}),
                 record({.id = "b", .parameters = R"({"norm":"l1","abs":true})"})}),
          lines({record({.id = "a", .parameters = R"({"norm":"l2","abs":true})", .model = "models/gpt2-v2"}),
                 record({.id = "b", .parameters = R"({"norm":"l2","abs":true})", .matrix = "[[0.5,0.25,0.125],[0.0625,0.5,0.3]]"})}));
  const auto r = f.compare();
  REQUIRE(r.parameter_changes.size() == 2);
  CHECK(r.parameter_changes[0].field == "model.path");
  CHECK(r.parameter_changes[0].records == 1);
  CHECK(r.parameter_changes[1].field == "parameters.norm");
  CHECK(r.parameter_changes[1].old_value == "\"l1\"");
  CHECK(r.parameter_changes[1].new_value == "\"l2\"");
  CHECK(r.parameter_changes[1].records == 2);
  CHECK(r.parameter_changes[1].first_id == "a");
  const std::string text = pizza::diff::render_text(r);
  INFO(text);
  const size_t params = text.find("parameters.norm: \"l1\" \u2192 \"l2\" (2 records, first \"a\")");
  CHECK(params != std::string::npos);
  CHECK(params < text.find("record \"b\":"));
  CHECK_THAT(pizza::diff::render_json(r), Catch::Contains(R"("field": "parameters.norm")"));
  // Context only: the same scores under other parameters are still the same scores.
  Files only_params(record({.parameters = R"({"norm":"l1"})"}), record({.parameters = R"({"norm":"l2"})"}));
  CHECK(only_params.compare().same());
  CHECK(only_params.compare().parameter_changes.size() == 1);
}

TEST_CASE("per-matrix tolerances override the default for one metric", "[diff]") {
  double all = 1e-4;
  std::map<std::string, double, std::less<>> by;
  pizza::diff::parse_tolerances("--atol", {"1e-3,saliency=1e-5", "grad_norm=2"}, all, by);
  CHECK(all == 1e-3);
  CHECK(by.at("saliency") == 1e-5);
  CHECK(by.at("grad_norm") == 2);
  for (const char* bad : {"x", "prob=", "=1", "-1", "prob=nan", "1e-4,,"}) {
    INFO(bad);
    CHECK_THROWS_AS(pizza::diff::parse_tolerances("--atol", {bad}, all, by), pizza::UsageError);
  }

  // grad_norm drifts by 0.5 in one cell, saliency by 0.01 in one cell.
  const std::string base_m = R"("matrices":{"saliency":)" + kMatrix + R"(,"grad_norm":[[1,2,3],[4,5,6]]},)";
  const std::string new_m = R"("matrices":{"saliency":[[0.5,0.25,0.135],[0.0625,0.5,0.25]],"grad_norm":[[1,2,3.5],[4,5,6]]},)";
  Files f(record({.extra_fields = base_m}), record({.matrix = "[[0.5,0.25,0.135],[0.0625,0.5,0.25]]", .extra_fields = new_m}));
  CHECK(f.compare({.top_k = 0}).differences() == 2);
  pizza::diff::Options loose_grad{.top_k = 0};
  loose_grad.atol_by_matrix["grad_norm"] = 1;
  const auto r = f.compare(loose_grad);
  CHECK(only_finding(r).matrix == "saliency");
  loose_grad.atol_by_matrix["saliency"] = 0.1;
  CHECK(f.compare(loose_grad).same());
  // A name in neither file is a typo, not a silent default.
  pizza::diff::Options typo;
  typo.rtol_by_matrix["grad_nrom"] = 1;
  try {
    f.compare(typo);
    FAIL("no UsageError");
  } catch (const pizza::UsageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("--rtol: no matrix named 'grad_nrom'") && Catch::Contains("saliency, grad_norm"));
  }
}

TEST_CASE("min-spearman checks each row and the totals by rank correlation", "[diff]") {
  // Row 1: (0.0625, 0.5, 0.25) -> (0.5, 0.0625, 0.25), ranks 1 3 2 -> 3 1 2: rho = 1 - 6*8/24 = -1;
  // row 0 unchanged (rho 1). Totals (0.28, 0.38, 0.19) -> (0.5, 0.16, 0.19), ranks 2 3 1 -> 3 1 2:
  // rho = 1 - 6*6/24 = -0.5.
  Files f(record({}), record({.matrix = "[[0.5,0.25,0.125],[0.5,0.0625,0.25]]"}));
  pizza::diff::Options opt{.tolerance = {.atol = 1}, .top_k = 0, .min_spearman = 0.5};
  const auto r = f.compare(opt);
  REQUIRE(r.records.size() == 1);
  const auto& fs = r.records[0].findings;
  REQUIRE(fs.size() == 2);
  CHECK(fs[0].kind == Kind::spearman);
  CHECK(fs[0].output_index == 1u);
  CHECK(std::get<double>(fs[0].new_value) == Approx(-1));
  CHECK(fs[1].kind == Kind::spearman);
  CHECK_FALSE(fs[1].output_index);  // the totals
  const std::string text = pizza::diff::render_text(r);
  CHECK_THAT(text, Catch::Contains("spearman [saliency] output 1 \" the\": rank correlation -1 < 0.5"));
  CHECK_THAT(text, Catch::Contains("spearman [saliency] totals: rank correlation -0.5 < 0.5"));
  opt.min_spearman = -0.6;
  CHECK(only_finding(f.compare(opt)).output_index == 1u);
  opt.min_spearman = -1;
  CHECK(f.compare(opt).same());
  opt.min_spearman = 1.5;
  CHECK_THROWS_AS(f.compare(opt), pizza::UsageError);
}

TEST_CASE("a record read back holds everything the writer wrote", "[diff]") {
  std::string doc = record({.parameters = R"({"norm":"l1","ig_steps":20,"scale":1e-05})"});
  doc.replace(doc.find(R"("row_stats":{})"), 14, R"("row_stats":{"target_value":[0.5,0.25]})");
  pizza::test::TempDir dir;
  pizza::write_file_atomic(dir / "doc.json", doc);
  const auto file = pizza::diff::load_results(dir / "doc.json");
  REQUIRE(file.records.size() == 1);
  const pizza::AttributionResult& r = file.records[0].result;
  CHECK(r.tool_version == "0.1.0");
  CHECK(r.model_type == "gpt2");
  CHECK(r.engine == "local");
  CHECK(r.target == "prob");
  CHECK(r.text == "The cat sat");
  REQUIRE(r.parameters.size() == 3);
  CHECK(r.parameters[1] == std::pair<std::string, std::string>{"ig_steps", "20"});
  CHECK(r.parameters[2].second == "1e-05");
  CHECK(r.inputs[1].token_ids == std::vector<int32_t>{3797});
  CHECK(r.inputs[1].begin == 3);
  CHECK(r.outputs[0].prob == 0.5);
  REQUIRE(r.row_stats.size() == 1);
  CHECK(r.row_stats[0].second == std::vector<double>{0.5, 0.25});
  CHECK(r.timings.load_ms == 12.5);
  CHECK(r.run.threads == 4);
  CHECK(r.run.blas == "OpenBLAS");
}
