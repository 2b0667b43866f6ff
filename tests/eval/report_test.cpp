// The `pizza eval` writers on a hand-built report: the JSON satisfies the committed schema
// (checked by python3-jsonschema), the aggregate is the mean and t-interval over prompts, the
// table marks each column's best method, CSV is long format, and the HTML page draws its curves
// and prompt selector in headless Chromium.
#include <catch2/catch.hpp>

#include <cmath>

#include "eval/report.h"
#include "support/paths.h"
#include "util/file.h"

using namespace pizza::eval;

namespace {

MethodEval method(std::string name, double deletion, double insertion, double lds) {
  MethodEval m;
  m.method = std::move(name);
  m.deletion = deletion;
  m.insertion = insertion;
  m.abpc = insertion - deletion;
  m.lds = lds;
  m.topk = {{1, 2 * insertion}, {3, 3 * insertion}};
  m.deletion_curve = {{0, 0.5, 1}, {0.9, deletion, 0.1}};
  m.insertion_curve = {{0, 0.5, 1}, {0.1, insertion, 0.9}};
  m.ranking = {1, 0};
  m.time_ms = 10;
  m.model_calls = 4;
  return m;
}

PromptRecord prompt(std::string id, std::string text, double shift) {
  PromptRecord p;
  p.id = std::move(id);
  p.prompt = std::move(text);
  p.output_text = " out";
  p.output_tokens = {" out"};
  p.units = {"Once", " </script><b>x</b>"};
  p.spans = {{0, 4}, {4, 22}};
  p.eval.units = 2;
  p.eval.rows = 1;
  p.eval.original_logprobs = {-0.5};
  p.eval.scored_sets = 7;
  p.eval.lds_masks = {{true, false}, {false, true}};
  p.eval.methods = {method("saliency", 0.2 + shift, 0.6 + shift, 0.5), method("random", 0.4 + shift, 0.3 + shift, 0.1)};
  return p;
}

EvalReport sample() {
  EvalReport r;
  r.tool_version = "0.1.0";
  r.model = "stories";
  r.engine = "local";
  r.unit = "word";
  r.strategy = "delete";
  r.methods = {"saliency", "random"};
  r.parameters = {{"max_new_tokens", "8"}};
  r.run = {"cpu", "float32", 2, "OpenBLAS"};
  r.prompts = {prompt("a", "Once upon", 0.0), prompt("b", "Once more", 0.1)};
  PromptRecord failed;
  failed.id = "c";
  failed.prompt = "bad";
  failed.error = "the prompt has no unit that can be removed";
  r.prompts.push_back(failed);
  return r;
}

}  // namespace

TEST_CASE("eval: the aggregate is the mean and Student t interval over the prompts that did not fail") {
  const auto r = sample();
  const auto agg = aggregate(r);
  const auto cols = columns(r.options);
  REQUIRE(cols.size() == 7);  // deletion insertion abpc top-1 top-3 top-5 lds
  CHECK(cols[3].name == "top-1");
  // saliency deletion: 0.2 and 0.3 -> mean 0.25, sd 0.0707..., ci = 12.706 * sd / sqrt(2) = 0.6353.
  CHECK(agg[0][0].n == 2);
  CHECK(agg[0][0].mean == Approx(0.25).epsilon(1e-12));
  CHECK(agg[0][0].ci95 == Approx(12.706 * std::sqrt(0.005) / std::sqrt(2.0)).epsilon(1e-9));
  // top-5 was not computed: no value.
  CHECK(agg[0][5].n == 0);
}

TEST_CASE("eval: JSON satisfies the committed schema and carries every prompt's metrics") {
  pizza::test::TempDir dir;
  const auto path = dir / "eval.json";
  const std::string json = render(sample(), pizza::report::Format::json, false);
  pizza::write_file_atomic(path, json);
  const auto res = pizza::test::validate_json_schema(PIZZA_SOURCE_DIR "/lib/eval/eval.schema.json", path);
  INFO(res.output);
  CHECK(res.exit_code == 0);
  CHECK(json.find("\"error\": \"the prompt has no unit that can be removed\"") != std::string::npos);
  CHECK(json.find("\"lds_masks\": [\n") != std::string::npos);
  CHECK(json.find("\"10\"") != std::string::npos);
  // jq (independent of our writer) reads the aggregate back.
  const auto q = pizza::test::run_command("jq -r '.aggregate[0].metrics.deletion.mean' " +
                                          pizza::test::shell_quote(path.string()));
  CHECK(std::stod(q.output) == Approx(0.25).epsilon(1e-12));
}

TEST_CASE("eval: the table marks the best value of every column and says what failed") {
  const std::string t = render(sample(), pizza::report::Format::table, false);
  INFO(t);
  const auto lines = pizza::test::lines_of(t);
  REQUIRE(lines.size() > 5);
  CHECK(lines[0].find("2 prompts") != std::string::npos);
  CHECK(lines[1].find("1 prompt(s) failed") != std::string::npos);
  // Saliency: lower deletion and higher everything else: each of its computed cells is starred.
  const auto& sal = lines[3];
  CHECK(sal.rfind("saliency", 0) == 0);
  CHECK(std::count(sal.begin(), sal.end(), '*') == 6);
  CHECK(lines[4].find('*') == std::string::npos);
  CHECK(lines[4].rfind("random (mean of 10 seeds)", 0) == 0);
  const std::string colored = render(sample(), pizza::report::Format::table, true);
  CHECK(colored.find("\x1b[1;32m") != std::string::npos);
}

TEST_CASE("eval: CSV is one value per line") {
  const std::string csv = render(sample(), pizza::report::Format::csv, false);
  const auto lines = pizza::test::lines_of(csv);
  // LF line ends (RFC 4180 allows them; `cut | paste | bc` pipelines break on CR).
  CHECK(csv.find('\r') == std::string::npos);
  CHECK(lines[0] == "prompt,method,metric,k,fraction,value");
  CHECK(std::find(lines.begin(), lines.end(), "a,saliency,topk,3,,1.7999999999999998") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "a,saliency,deletion_curve,,0.5,0.2") != lines.end());
  // 2 prompts x 2 methods x (6 metric values + 3 + 3 curve points).
  CHECK(lines.size() == 1 + 2 * 2 * 12);
}

TEST_CASE("eval: the HTML page draws curves and switches prompts in Chromium") {
  pizza::test::TempDir dir;
  const auto path = dir / "eval.html";
  const std::string html = render(sample(), pizza::report::Format::html, false);
  for (const char* ref : {"http:", "https:", "src=", "href=", "url(", "@import", "<link"})
    CHECK(html.find(ref) == std::string::npos);
  CHECK(html.find("<b>x</b>") == std::string::npos);  // unit text is escaped
  pizza::write_file_atomic(path, html);
  const std::string dom = pizza::test::chromium_dom(path);
  // Mean curves: 2 charts x 2 methods; per prompt: 2 charts x 2 methods for each good prompt.
  size_t polylines = 0;
  for (size_t p = dom.find("<polyline"); p != std::string::npos; p = dom.find("<polyline", p + 1)) ++polylines;
  CHECK(polylines == 4 + 2 * 4);
  CHECK(dom.find("id=\"aggregate\"") != std::string::npos);
  CHECK(dom.find("class=\"best\"") != std::string::npos);
  CHECK(dom.find("<option value=\"2\">c: bad (failed)</option>") != std::string::npos);
  CHECK(dom.find("id=\"prompt-1\" hidden") != std::string::npos);
  // The page's script shows the prompt named in the URL and hides the others.
  const std::string second = pizza::test::chromium_dom(path, "#prompt-1");
  CHECK(second.find("id=\"prompt-0\" hidden") != std::string::npos);
  CHECK(second.find("id=\"prompt-1\" hidden") == std::string::npos);
}
