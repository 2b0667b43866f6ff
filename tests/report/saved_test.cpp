// A saved result read back (lib/diff/load.cpp) renders as the result it was saved from, and a
// saved batch renders as one report (pizza render).
#include <catch2/catch.hpp>
#include <simdjson.h>

#include "diff/diff.h"
#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json_compact.h"

namespace {

using pizza::report::Format;


pizza::report::RenderOptions plain() {
  pizza::report::RenderOptions opt;
  opt.color = pizza::report::ColorMode::never;
  opt.terminal_width = 100;
  return opt;
}

pizza::AttributionResult read_back(const pizza::AttributionResult& r) {
  const auto file = pizza::diff::parse_results(pizza::report::render(r, Format::json, plain()), "saved.json");
  REQUIRE(file.records.size() == 1);
  return file.records[0].result;
}

}  // namespace

// What the file cannot hold: the whitespace inside raw JSON values (parameters, extra), which
// are read back compact (as every engine writes them).
pizza::AttributionResult compact_raw_values(pizza::AttributionResult r) {
  simdjson::dom::parser parser;
  for (auto* kv : {&r.parameters, &r.extra_json})
    for (auto& [name, json] : *kv) json = pizza::compact_json(parser.parse(json).value());
  return r;
}

TEST_CASE("a saved result read back renders byte-identical in every format", "[saved]") {
  for (const auto& fixture : {pizza::test::sample_result(), pizza::test::sample_result_two_metrics()}) {
    const auto back = read_back(fixture);
    // Table and CSV never show raw values; JSON and HTML do, compact after the round trip.
    CHECK(pizza::report::render(back, Format::table, plain()) == pizza::report::render(fixture, Format::table, plain()));
    const auto original = compact_raw_values(fixture);
    for (Format f : {Format::table, Format::csv, Format::json, Format::html}) {
      INFO(pizza::report::format_name(f));
      CHECK(pizza::report::render(back, f, plain()) == pizza::report::render(original, f, plain()));
    }
  }
}

TEST_CASE("a saved batch renders as one table or CSV with ids and its failures", "[saved]") {
  const auto a = pizza::test::sample_result(), b = pizza::test::sample_result_two_metrics();
  const std::vector<pizza::report::BatchRecord> records{{"q1", &a, ""}, {"q2", nullptr, "prompt too long"}, {"q3", &b, ""}};
  const std::string table = pizza::report::render_batch(records, Format::table, plain());
  CHECK(table.rfind("record \"q1\":\n" + pizza::report::render(a, Format::table, plain()), 0) == 0);
  CHECK_THAT(table, Catch::Contains("\nrecord \"q2\" failed: prompt too long\n"));
  CHECK_THAT(table, Catch::Contains("\nrecord \"q3\":\n" + pizza::report::render(b, Format::table, plain())));

  const std::string csv = pizza::report::render_batch(records, Format::csv, plain());
  CHECK(csv.rfind("id,metric,output_index,", 0) == 0);  // one header; q3 has two metrics
  CHECK_THAT(csv, Catch::Contains("\nq1,"));
  CHECK_THAT(csv, Catch::Contains("\nq3,"));
  CHECK(csv.find("q2") == std::string::npos);
  CHECK_THROWS_AS(pizza::report::render_batch(records, Format::json, plain()), pizza::UsageError);
}

TEST_CASE("a saved batch is one HTML page with a record selector in Chromium", "[saved][html]") {
  auto a = pizza::test::sample_result(), b = pizza::test::sample_result_two_metrics();
  b.inputs[1].text = "SECOND";
  const std::vector<pizza::report::BatchRecord> records{{"q1", &a, ""}, {"q2", nullptr, "prompt too long"}, {"q3", &b, ""}};
  pizza::test::TempDir dir;
  const auto path = dir / "batch.html";
  pizza::write_file_atomic(path, pizza::report::render_batch(records, Format::html, plain()));

  const std::string first = pizza::test::chromium_dom(path);
  INFO(first.substr(0, 3000));
  CHECK_THAT(first, Catch::Contains("<option value=\"0\">q1</option>"));
  CHECK_THAT(first, Catch::Contains("<option value=\"1\">q2 (failed)</option>"));
  CHECK_THAT(first, Catch::Contains("<option value=\"2\">q3</option>"));
  const std::string first_table = first.substr(first.find("id=\"heatmap\""));
  CHECK(first_table.substr(0, first_table.find("</table>")).find("SECOND") == std::string::npos);
  // #record-2 opens the third record; #record-1 its error.
  const std::string third = pizza::test::chromium_dom(path, "#record-2");
  const std::string heat = third.substr(third.find("id=\"heatmap\""));
  CHECK_THAT(heat.substr(0, heat.find("</table>")), Catch::Contains("SECOND"));
  const std::string failed = pizza::test::chromium_dom(path, "#record-1");
  CHECK_THAT(failed, Catch::Contains("record \"q2\" failed: prompt too long"));
  CHECK_THAT(failed, Catch::Contains("id=\"view\" style=\"display: none;\""));
}
