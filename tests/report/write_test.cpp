#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"

namespace {

using Catch::Matchers::Contains;

std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("write infers the format from the extension and leaves no temp file", "[write]") {
  const auto r = pizza::test::sample_result();
  pizza::test::TempDir dir;
  pizza::report::RenderOptions opt;
  opt.color = pizza::report::ColorMode::auto_;
  opt.stdout_is_tty = true;  // a terminal on stdout must not colour a file
  opt.terminal_width = 80;
  for (const char* name : {"out.csv", "out.json", "out.html", "out.txt", "out.unknown"})
    pizza::report::write(r, std::nullopt, (dir / name).string(), opt);
  CHECK(dir_entries(dir.path()) ==
        std::vector<std::string>{"out.csv", "out.html", "out.json", "out.txt", "out.unknown"});

  CHECK(pizza::read_file(dir / "out.csv").rfind("output_index,output_token,", 0) == 0);
  CHECK(pizza::read_file(dir / "out.json").rfind("{\n  \"schema_version\": 1,", 0) == 0);
  CHECK(pizza::read_file(dir / "out.html").rfind("<!DOCTYPE html>", 0) == 0);
  std::string txt = pizza::read_file(dir / "out.txt");
  CHECK(txt.rfind("method: saliency", 0) == 0);
  CHECK(txt.find('\x1b') == std::string::npos);
  CHECK(pizza::read_file(dir / "out.unknown").rfind("method: saliency", 0) == 0);  // table

  // An explicit format wins over the extension, and a rewrite replaces the file whole.
  pizza::report::write(r, pizza::report::Format::csv, (dir / "out.json").string(), opt);
  CHECK(pizza::read_file(dir / "out.json").rfind("output_index,", 0) == 0);
  CHECK(dir_entries(dir.path()).size() == 5);
}

TEST_CASE("write reports an unwritable path as an InputError", "[write]") {
  pizza::test::TempDir dir;
  CHECK_THROWS_AS(pizza::report::write(pizza::test::sample_result(), std::nullopt,
                                       (dir / "missing" / "out.csv").string(), {}),
                  pizza::InputError);
  CHECK(dir_entries(dir.path()).empty());
}

TEST_CASE("no format renders a result holding a non-finite value and the error names the cell", "[write]") {
  // NaN weights used to give exit 0 and a table of "nan" (and 1e999 in JSON), which reads as an
  // attribution; now every writer refuses the result with the first bad cell on one line.
  using pizza::report::Format;
  auto error_of = [](const pizza::AttributionResult& r, Format f) -> std::string {
    try {
      pizza::report::render(r, f, {});
    } catch (const pizza::InputError& e) {
      return e.what();
    }
    return "(rendered)";
  };
  auto one_line = [](const std::string& s) { return s.find('\n') == std::string::npos && s.find('\r') == std::string::npos; };

  pizza::AttributionResult r = pizza::test::sample_result_two_metrics();
  r.matrices[1].at(2, 5) = -INFINITY;  // output "\r\n", input "naïve"
  r.matrices[1].at(2, 6) = std::nan("");
  r.row_stats[0].second[1] = std::nan("");
  for (Format f : {Format::table, Format::csv, Format::json, Format::html}) {
    const std::string e = error_of(r, f);
    INFO(e);
    CHECK(one_line(e));
    CHECK_THAT(e, Contains("matrix \"grad_x_input\" row 2 (output \"\\r\\n\") column 5 (input \"na\xc3\xafve\") is -infinity"));
  }
  r.matrices[1].at(2, 5) = 1.0;
  r.matrices[1].at(2, 6) = 1.0;
  CHECK_THAT(error_of(r, Format::json), Contains("row statistic \"target_value\" row 1 (output \",\\\"B\\\"\") is NaN"));
  r.row_stats[0].second[1] = 0.5;
  r.outputs[0].prob = INFINITY;
  CHECK_THAT(error_of(r, Format::table), Contains("output probability of row 0 (output \" A\") is +infinity"));
  r.outputs[0].prob = 0.5;
  CHECK(error_of(r, Format::json) == "(rendered)");
}
