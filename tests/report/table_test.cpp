#include <catch2/catch.hpp>


#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/error.h"

namespace {

using pizza::report::ColorMode;
using pizza::report::Format;
using pizza::report::RenderOptions;
using pizza::test::lines_of;

std::string table(const pizza::AttributionResult& r, RenderOptions opt) {
  if (opt.terminal_width == 0) opt.terminal_width = 100;
  return pizza::report::render(r, Format::table, opt);
}

RenderOptions with_color(ColorMode mode, bool tty, bool no_color) {
  RenderOptions opt;
  opt.color = mode;
  opt.stdout_is_tty = tty;
  opt.no_color_env = no_color;
  return opt;
}

bool has_escape(const std::string& s) { return s.find('\x1b') != std::string::npos; }

// A wide result: many outputs so the matrix needs several column blocks.
pizza::AttributionResult wide_result() {
  pizza::AttributionResult r = pizza::test::sample_result();
  pizza::ScoreMatrix m = r.matrices[0];
  for (int k = 0; k < 9; ++k) r.outputs.push_back({300 + k, " word" + std::to_string(k), 0.1});
  m.rows = r.outputs.size();
  m.values.resize(m.rows * m.cols);
  for (size_t k = 24; k < m.values.size(); ++k) m.values[k] = 0.01 * static_cast<double>(k);
  r.matrices = {m};
  return r;
}
}  // namespace

TEST_CASE("table emits ANSI colour only when asked or on a terminal without NO_COLOR", "[table]") {
  const auto r = pizza::test::sample_result();
  CHECK_FALSE(has_escape(table(r, with_color(ColorMode::never, true, false))));
  CHECK_FALSE(has_escape(table(r, with_color(ColorMode::auto_, false, false))));
  CHECK_FALSE(has_escape(table(r, with_color(ColorMode::auto_, true, true))));
  CHECK(has_escape(table(r, with_color(ColorMode::auto_, true, false))));
  CHECK(has_escape(table(r, with_color(ColorMode::always, false, true))));

  RenderOptions opt = with_color(ColorMode::always, false, false);
  std::string palette = table(r, opt);
  CHECK(palette.find("\x1b[48;5;") != std::string::npos);  // 256-colour background
  opt.truecolor = true;
  CHECK(table(r, opt).find("\x1b[48;2;") != std::string::npos);  // 24-bit background
}

TEST_CASE("table never passes control bytes from tokens to the terminal", "[table]") {
  auto r = pizza::test::sample_result();
  r.inputs[2].text = "\x1b[31mred";   // an escape sequence inside a token
  r.outputs[1].text = "bad\xff";      // invalid UTF-8
  std::string out = table(r, with_color(ColorMode::never, false, false));
  CHECK_FALSE(has_escape(out));
  CHECK(out.find("\\x1B[31mred") != std::string::npos);
  CHECK(out.find("bad\\xFF") != std::string::npos);
}

TEST_CASE("table shows whitespace visibly and the PIZZA layout", "[table]") {
  const auto r = pizza::test::sample_result();
  std::string out = table(r, with_color(ColorMode::never, false, false));
  INFO(out);
  CHECK(out.find("method: saliency") != std::string::npos);
  CHECK(out.find("target: prob") != std::string::npos);
  CHECK(out.find("model: /models/tiny") != std::string::npos);
  CHECK(out.find("\u2423A") != std::string::npos);        // output " A" -> "␣A"
  CHECK(out.find("\\x0D\u21B5") != std::string::npos);    // output "\r\n"
  CHECK(out.find("4 \u21B5") != std::string::npos);       // input 4 is "\n"
  CHECK(out.find("3 \u2423\"you\"") != std::string::npos);
  CHECK(out.find("7 \u2423A*") != std::string::npos);     // generated unit is marked
  // The prompt is printed as running text (real newline) before the matrix.
  CHECK(out.find("Hi, \"you\"\nna\xc3\xafve") != std::string::npos);
  // Input rows are rows: each input label starts a line, in order.
  auto lines = lines_of(out);
  std::vector<size_t> order;
  for (size_t i = 0; i < r.inputs.size(); ++i)
    for (size_t l = 0; l < lines.size(); ++l)
      if (lines[l].rfind(std::to_string(i) + " ", 0) == 0) {
        order.push_back(l);
        break;
      }
  REQUIRE(order.size() == r.inputs.size());
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("table truncates long tokens by code points with an ellipsis", "[table]") {
  auto r = pizza::test::sample_result();
  r.inputs[1].text = "abcdefghij";
  r.inputs[5].text = "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4";  // 8 x 'ä'
  RenderOptions opt = with_color(ColorMode::never, false, false);
  opt.max_token_chars = 5;
  std::string out = table(r, opt);
  INFO(out);
  CHECK(out.find("1 abcd\u2026") != std::string::npos);  // 4 letters + '…' = 5 columns
  CHECK(out.find("abcde") == std::string::npos);
  // 16 bytes but 8 code points: 4 x 'ä' + '…'.
  CHECK(out.find("5 \xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\u2026") != std::string::npos);
  CHECK(out.find("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4") == std::string::npos);
}

TEST_CASE("table splits wide matrices into blocks within the terminal width", "[table]") {
  const auto r = wide_result();
  for (ColorMode mode : {ColorMode::never, ColorMode::always}) {
    for (int width : {40, 60, 90}) {
      RenderOptions opt = with_color(mode, false, false);
      opt.terminal_width = width;
      std::string out = table(r, opt);
      INFO("width " << width << "\n" << out);
      size_t blocks = 0;
      for (const std::string& line : lines_of(out)) {
        CHECK(pizza::test::terminal_width_of(line) <= static_cast<size_t>(width));
        if (line.rfind("input \\ output", 0) == 0) ++blocks;
      }
      CHECK(blocks >= 2);  // 12 outputs + mean never fit in 90 columns next to the labels
      // Every added output token appears (visibly) in some block header.
      for (int k = 0; k < 9; ++k)
        CHECK(out.find("\u2423word" + std::to_string(k)) != std::string::npos);
    }
  }
}

TEST_CASE("table prints every matrix by name and row stats under the primary one", "[table]") {
  const auto r = pizza::test::sample_result_two_metrics();
  std::string out = table(r, with_color(ColorMode::never, false, false));
  INFO(out);
  size_t first = out.find("Matrix: saliency"), second = out.find("Matrix: grad_x_input");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(first < second);
  size_t stat = out.find("target_value");
  REQUIRE(stat != std::string::npos);
  CHECK(stat > first);
  CHECK(stat < second);
  CHECK(out.find("completeness_gap") != std::string::npos);
  // row 1 of target_value is 0.125 (printed %.4g)
  CHECK(out.find("0.125", stat) < out.find('\n', stat));
}

TEST_CASE("format names and extensions", "[table]") {
  using pizza::report::format_from_extension;
  CHECK(pizza::report::parse_format("csv") == Format::csv);
  CHECK(pizza::report::parse_format("html") == Format::html);
  CHECK_THROWS_AS(pizza::report::parse_format("xml"), pizza::UsageError);
  CHECK_THROWS_WITH(pizza::report::parse_format("xml"), Catch::Contains("table, csv, json, jsonl, html"));
  CHECK(format_from_extension("a/b.csv") == Format::csv);
  CHECK(format_from_extension("b.JSON") == Format::json);
  CHECK(format_from_extension("b.htm") == Format::html);
  CHECK(format_from_extension("b.html") == Format::html);
  CHECK(format_from_extension("b.txt") == Format::table);
  CHECK(format_from_extension("b.jsonl") == Format::jsonl);
  CHECK(format_from_extension("b.NDJSON") == Format::jsonl);
  CHECK(pizza::report::parse_format("jsonl") == Format::jsonl);
  CHECK_FALSE(format_from_extension("b.xlsx").has_value());
  CHECK_FALSE(format_from_extension("noext").has_value());
}
