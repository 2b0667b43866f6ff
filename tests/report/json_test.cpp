#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cmath>
#include <cstring>

#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"

namespace {

const std::string kSchema = std::string(PIZZA_SOURCE_DIR) + "/lib/report/attribution.schema.json";

pizza::test::ProcessResult validate_with_schema(const std::filesystem::path& doc) {
  return pizza::test::validate_json_schema(kSchema, doc);
}

// `doc` satisfies the schema.
void check_valid(const std::filesystem::path& doc) {
  const auto res = validate_with_schema(doc);
  INFO(res.output);
  CHECK(res.exit_code == 0);
  CHECK(res.output.find("valid") != std::string::npos);
}

bool jq_true(const std::filesystem::path& doc, const std::string& filter) {
  auto res = pizza::test::run_command("jq -e " + pizza::test::shell_quote(filter) + " " +
                                      pizza::test::shell_quote(doc.string()));
  INFO("jq " << filter << ": " << res.output);
  return res.exit_code == 0;
}

// OUT: `doc` passed through the jq filter (an edited copy for the schema to judge).
std::filesystem::path jq_edit(const std::filesystem::path& doc, const std::string& filter,
                              const std::filesystem::path& out) {
  const auto res = pizza::test::run_command("jq " + pizza::test::shell_quote(filter) + " " +
                                            pizza::test::shell_quote(doc.string()) + " > " +
                                            pizza::test::shell_quote(out.string()));
  INFO("jq " << filter << ": " << res.output);
  REQUIRE(res.exit_code == 0);
  return out;
}

bool bit_equal(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::filesystem::path write_json(const pizza::test::TempDir& dir, const pizza::AttributionResult& r) {
  auto path = dir / "result.json";
  pizza::write_file_atomic(path, pizza::report::render(r, pizza::report::Format::json, {}));
  return path;
}

}  // namespace

TEST_CASE("JSON validates against the committed schema", "[json]") {
  pizza::test::TempDir dir;
  auto path = write_json(dir, pizza::test::sample_result());
  check_valid(path);

  // The schema is not vacuous: a document without its matrix is rejected.
  CHECK(validate_with_schema(jq_edit(path, "del(.matrix)", dir / "broken.json")).exit_code != 0);

  // Scores are numbers, never null: a result holding NaN is refused before it is written.
  CHECK(validate_with_schema(jq_edit(path, ".matrix[0][0] = null", dir / "null.json")).exit_code != 0);
}

TEST_CASE("JSON with several matrices and row stats validates", "[json]") {
  pizza::test::TempDir dir;
  auto path = write_json(dir, pizza::test::sample_result_two_metrics());
  check_valid(path);
  CHECK(jq_true(path, ".matrices | keys == [\"grad_x_input\", \"saliency\"]"));
  CHECK(jq_true(path, ".matrices.grad_x_input[1][0] == 4"));  // 0.5 * (1*8 + 0)
  CHECK(jq_true(path, ".row_stats.target_value == [0.5, 0.125, 0.25]"));
}

TEST_CASE("JSON fields read back with jq", "[json]") {
  pizza::test::TempDir dir;
  auto path = write_json(dir, pizza::test::sample_result());
  CHECK(jq_true(path, ".schema_version == 1 and .tool.name == \"pizza\""));
  CHECK(jq_true(path, ".tool.version == \"9.9.9-test\""));
  CHECK(jq_true(path, ".inputs[6].token_ids == [105, 106] and .inputs[6].span == [16, 23]"));
  CHECK(jq_true(path, ".inputs[0].special and (.inputs[7].generated)"));
  CHECK(jq_true(path, ".outputs[1].prob == null and .outputs[2].id == null"));
  CHECK(jq_true(path, ".parameters == {\"steps\": 20, \"baseline\": \"zeros\", \"layers\": [1, 2]}"));
  CHECK(jq_true(path, ".extra.server.n == [1, 2]"));
  CHECK(jq_true(path, ".timings == {\"load_ms\": 12.5, \"generate_ms\": 30.25, \"attribute_ms\": 4.125, \"peak_rss_bytes\": 123456789}"));
  CHECK(jq_true(path, ".run.threads == 2 and .run.blas == \"OpenBLAS 0.3.21\""));
  CHECK(jq_true(path, "(.matrix | length) == 3 and (.matrix[0] | length) == 8 and (has(\"matrices\") | not)"));
  CHECK(jq_true(path, ".prompt == \"Hi, \\\"you\\\"\\nnaïve 日本\""));
  CHECK_FALSE(jq_true(path, ".schema_version == 2"));  // jq -e does fail on a false filter
}

TEST_CASE("JSON numbers round-trip bit-exactly", "[json]") {
  const pizza::AttributionResult r = pizza::test::sample_result();
  simdjson::dom::parser parser;
  simdjson::padded_string text(pizza::report::render(r, pizza::report::Format::json, {}));
  simdjson::dom::element doc = parser.parse(text);
  const pizza::ScoreMatrix& m = r.matrix();
  size_t o = 0;
  for (simdjson::dom::element row : doc["matrix"].get_array()) {
    size_t i = 0;
    for (simdjson::dom::element v : row.get_array()) {
      INFO("matrix[" << o << "][" << i << "] = " << simdjson::to_string(v));
      double got = v.get_double();
      CHECK(bit_equal(got, m.at(o, i)));  // including -0.0, 5e-324 and DBL_MAX
      ++i;
    }
    CHECK(i == m.cols);
    ++o;
  }
  CHECK(o == m.rows);
  // totals = mean over the 3 rows; column 1 is (1/3 - 0.3 + 0.125) / 3.
  double t1 = doc["totals"].at(1).get_double();
  CHECK(bit_equal(t1, (1.0 / 3.0 + -0.3 + 0.125) / 3.0));
  CHECK(bit_equal(double(doc["outputs"].at(0)["prob"]), 0.5));
  // Column 3 total is (5e-324 + 123456789.123 - 1e21) / 3, about -3.3e20: beyond 2^53, so it
  // must not be written as a 21-digit integer (simdjson, like many parsers, rejects those).
  CHECK(bit_equal(double(doc["totals"].at(3)), (5e-324 + 123456789.123 + -1e21) / 3.0));
}

TEST_CASE("inconsistent results are rejected with a one-line error", "[json]") {
  using pizza::report::Format;
  auto r = pizza::test::sample_result();
  r.parameters.emplace_back("broken", "{not json");
  CHECK_THROWS_WITH(pizza::report::render(r, Format::json, {}),
                    Catch::Contains("parameter 'broken' is not valid JSON"));
  r = pizza::test::sample_result();
  r.outputs.pop_back();
  CHECK_THROWS_AS(pizza::report::render(r, Format::csv, {}), pizza::InputError);
  r = pizza::test::sample_result();
  r.inputs[2].end = 99;
  CHECK_THROWS_WITH(pizza::report::render(r, Format::table, {}), Catch::Contains("span"));
  r = pizza::test::sample_result();
  r.matrices.clear();
  CHECK_THROWS_AS(pizza::report::render(r, Format::html, {}), pizza::InputError);
}
