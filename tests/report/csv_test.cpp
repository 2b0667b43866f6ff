#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "report/report.h"
#include "report_fixtures.h"

namespace {

using Records = std::vector<std::vector<std::string>>;

// A strict RFC 4180 reader with LF record ends (what pizza writes): quoted fields with doubled
// quotes, and nothing else. Anything outside the grammar (a quote inside an unquoted field, an
// unterminated quoted field, a CR outside quotes, text after a closing quote, a missing final
// LF, records of different lengths) throws.
Records parse_csv_strict(std::string_view s) {
  Records records;
  std::vector<std::string> record;
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    std::string field;
    if (s[i] == '"') {
      ++i;
      for (;;) {
        if (i >= n) throw std::runtime_error("unterminated quoted field");
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += s[i++];
      }
    } else {
      while (i < n && s[i] != ',' && s[i] != '\n') {
        if (s[i] == '\r') throw std::runtime_error("CR outside a quoted field");
        if (s[i] == '"') throw std::runtime_error("quote inside an unquoted field");
        field += s[i++];
      }
    }
    record.push_back(std::move(field));
    if (i >= n) throw std::runtime_error("last record does not end with LF");
    if (s[i] == ',') {
      ++i;
      if (i >= n) throw std::runtime_error("input ends after a comma");
      continue;
    }
    if (s[i] == '\n') {
      i += 1;
      if (!records.empty() && records.front().size() != record.size())
        throw std::runtime_error("inconsistent field count");
      records.push_back(std::move(record));
      record.clear();
      continue;
    }
    throw std::runtime_error("unexpected character after a field");
  }
  return records;
}

double parse_double(const std::string& field) {
  char* end = nullptr;
  double v = std::strtod(field.c_str(), &end);
  REQUIRE(end == field.c_str() + field.size());
  return v;
}

// Same value and same bit pattern (so -0.0 stays negative and denormals stay exact).
bool bit_equal(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::string expected_input_id(const pizza::InputUnit& u) {
  return u.token_ids.size() == 1 ? std::to_string(u.token_ids[0]) : "";
}

}  // namespace

TEST_CASE("strict CSV test parser rejects malformed input", "[csv]") {
  CHECK_THROWS(parse_csv_strict("a,b\"c\n"));           // bare quote in unquoted field
  CHECK_THROWS(parse_csv_strict("a,\"bc\n"));           // unterminated quote
  CHECK_THROWS(parse_csv_strict("a,b\nc\n"));           // inconsistent field count
  CHECK_THROWS(parse_csv_strict("a,b\r\nc,d\r\n"));     // CRLF line ends (pizza writes LF)
  CHECK_THROWS(parse_csv_strict("a,\"b\"x\n"));         // text after closing quote
  CHECK(parse_csv_strict("a,\"b,\"\"c\"\"\r\n\"\n") == Records{{"a", "b,\"c\"\r\n"}});
}

TEST_CASE("CSV is long format, RFC 4180, and round-trips tokens and scores", "[csv]") {
  const pizza::AttributionResult r = pizza::test::sample_result();
  const std::string csv = pizza::report::render(r, pizza::report::Format::csv, {});
  const Records rec = parse_csv_strict(csv);
  const pizza::ScoreMatrix& m = r.matrix();
  REQUIRE(rec.size() == 1 + m.rows * m.cols);  // header + 3 outputs x 8 inputs = 25
  REQUIRE(rec[0] == std::vector<std::string>{"output_index", "output_token", "output_id",
                                             "input_index", "input_token", "input_id", "score"});
  size_t line = 1;
  for (size_t o = 0; o < m.rows; ++o) {
    for (size_t i = 0; i < m.cols; ++i, ++line) {
      const auto& f = rec[line];
      INFO("record " << line);
      CHECK(f[0] == std::to_string(o));
      CHECK(f[1] == r.outputs[o].text);  // " A", ",\"B\"", "\r\n" survive quoting
      CHECK(f[2] == (r.outputs[o].id >= 0 ? std::to_string(r.outputs[o].id) : ""));
      CHECK(f[3] == std::to_string(i));
      CHECK(f[4] == r.inputs[i].text);   // comma, quotes, newline, UTF-8 survive
      CHECK(f[5] == expected_input_id(r.inputs[i]));
      CHECK(bit_equal(parse_double(f[6]), m.at(o, i)));
    }
  }
  // The two-token word unit " 日本" has no single id; the BOS has id 1.
  CHECK(rec[1 + 6][5].empty());
  CHECK(rec[1][5] == "1");
}

TEST_CASE("CSV with several matrices has a leading metric column", "[csv]") {
  const pizza::AttributionResult r = pizza::test::sample_result_two_metrics();
  const Records rec = parse_csv_strict(pizza::report::render(r, pizza::report::Format::csv, {}));
  const size_t cells = r.matrix().rows * r.matrix().cols;
  REQUIRE(rec.size() == 1 + 2 * cells);
  CHECK(rec[0].front() == "metric");
  CHECK(rec[0].size() == 8);
  CHECK(rec[1][0] == "saliency");
  CHECK(rec[1 + cells][0] == "grad_x_input");
  // Second matrix value k is 0.5 * k (see sample_result_two_metrics); record 1+cells+k.
  for (size_t k = 0; k < cells; ++k)
    CHECK(bit_equal(parse_double(rec[1 + cells + k][7]), 0.5 * static_cast<double>(k)));
}
