#include "report_fixtures.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

namespace pizza::test {

namespace {

InputUnit unit(std::string text, size_t b, size_t e, std::vector<int32_t> ids) {
  InputUnit u;
  u.text = std::move(text);
  u.begin = b;
  u.end = e;
  u.token_ids = std::move(ids);
  return u;
}

}  // namespace

AttributionResult sample_result() {
  AttributionResult r;
  r.tool_version = "9.9.9-test";
  r.model_path = "/models/tiny";
  r.model_type = "llama";
  r.engine = "local";
  r.method = "saliency";
  r.target = "prob";
  r.parameters = {{"steps", "20"}, {"baseline", "\"zeros\""}, {"layers", "[1, 2]"}};
  // Byte offsets: H0 i1 ,2 ' '3 "4 y5 o6 u7 "8 \n9 n10 a11 ï12-13 v14 e15 ' '16 日17-19 本20-22.
  r.text = "Hi, \"you\"\nna\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac";
  r.output_text = " A,\"B\"\r\n";
  InputUnit bos = unit("<s>", 0, 0, {1});
  bos.special = true;
  r.inputs = {bos,
              unit("Hi", 0, 2, {100}),
              unit(",", 2, 3, {101}),
              unit(" \"you\"", 3, 9, {102}),
              unit("\n", 9, 10, {103}),
              unit("na\xc3\xafve", 10, 16, {104}),
              unit(" \xe6\x97\xa5\xe6\x9c\xac", 16, 23, {105, 106})};
  InputUnit gen = unit(" A", 0, 0, {200});
  gen.generated = true;
  r.inputs.push_back(gen);

  OutputToken o0{200, " A", 0.5};
  OutputToken o1{201, ",\"B\"", std::nullopt};
  OutputToken o2{-1, "\r\n", 0.25};
  r.outputs = {o0, o1, o2};

  ScoreMatrix m;
  m.name = "saliency";
  m.rows = 3;
  m.cols = 8;
  // Row 0 cannot depend on the generated column 7 (itself), so it holds 0 there.
  m.values = {0.1, 1.0 / 3.0, -0.0, 5e-324, std::numeric_limits<double>::max(), -2.5e-17, 0.2, 0.0,
              0.7, -0.3, 1e-300, 123456789.123, 0.05, 0.3, -0.6, 0.4,
              0.0, 0.125, 2.0 / 3.0, -1e21, 0.9, 1.5, -0.75, 0.33};
  r.matrices = {m};
  r.timings = {12.5, 30.25, 4.125, 123456789};
  r.run = {"cpu", "float32", 2, "OpenBLAS 0.3.21"};
  r.extra_json = {{"server", "{\"name\": \"x\", \"n\": [1, 2]}"}};
  return r;
}

AttributionResult sample_result_two_metrics() {
  AttributionResult r = sample_result();
  ScoreMatrix second = r.matrices[0];
  second.name = "grad_x_input";
  for (size_t k = 0; k < second.values.size(); ++k) second.values[k] = 0.5 * static_cast<double>(k);
  r.matrices.push_back(second);
  r.row_stats = {{"target_value", {0.5, 0.125, 0.25}}, {"completeness_gap", {1e-3, -2e-3, 0.0}}};
  return r;
}

std::string strip_ansi(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;  // up to the final byte
      continue;
    }
    out += s[i];
  }
  return out;
}

size_t terminal_width_of(std::string_view line) {
  std::string plain = strip_ansi(line);
  size_t width = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    auto c = static_cast<unsigned char>(plain[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    ++width;
    // U+3000..U+9FFF start with E3..E9 in UTF-8: CJK, two columns.
    if (c >= 0xE3 && c <= 0xE9) ++width;
  }
  return width;
}

}  // namespace pizza::test
