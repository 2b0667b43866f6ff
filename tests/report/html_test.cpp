#include <catch2/catch.hpp>

#include <filesystem>
#include <thread>

#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/file.h"

namespace {

// The text between the opening tag with this id and its matching close tag name.
std::string element_html(const std::string& dom, const std::string& id, const std::string& tag) {
  size_t start = dom.find("id=\"" + id + "\"");
  REQUIRE(start != std::string::npos);
  size_t end = dom.find("</" + tag + ">", start);
  REQUIRE(end != std::string::npos);
  return dom.substr(start, end - start);
}

}  // namespace

TEST_CASE("HTML is self-contained and escapes the embedded data", "[html]") {
  auto r = pizza::test::sample_result();
  r.inputs[2].text = "</script><b>x</b>";
  std::string html = pizza::report::render(r, pizza::report::Format::html, {});
  for (const char* ref : {"http:", "https:", "src=", "href=", "url(", "@import", "<link"})
    CHECK(html.find(ref) == std::string::npos);
  // Exactly the two script blocks we write, so the token cannot have closed the data block.
  size_t closes = 0;
  for (size_t p = html.find("</script>"); p != std::string::npos; p = html.find("</script>", p + 1))
    ++closes;
  CHECK(closes == 2);
  CHECK(html.find("<b>x</b>") == std::string::npos);
  CHECK(html.find("<script type=\"application/json\" id=\"pizza-data\">") != std::string::npos);
}

TEST_CASE("HTML page script draws the prompt, selector and heatmap in Chromium", "[html]") {
  auto r = pizza::test::sample_result();
  r.inputs[2].text = "</script><b>x</b>";  // must stay text, never markup
  pizza::test::TempDir dir;
  auto path = dir / "report.html";
  pizza::write_file_atomic(path, pizza::report::render(r, pizza::report::Format::html, {}));
  std::string dom = pizza::test::chromium_dom(path);

  // The page shipped these elements empty; only the script can have filled them.
  std::string prompt = element_html(dom, "prompt", "div");
  INFO(prompt);
  CHECK(prompt.find(">Hi</span>") != std::string::npos);
  CHECK(prompt.find(">na\xc3\xafve</span>") != std::string::npos);
  CHECK(prompt.find("&lt;s&gt;</span>") != std::string::npos);  // the BOS special
  CHECK(prompt.find("border-bottom-color") != std::string::npos);
  CHECK(prompt.find("class=\"output") != std::string::npos);  // generated tokens, clickable

  std::string select = element_html(dom, "row-select", "select");
  CHECK(select.find("#1 ,\"B\"") != std::string::npos);
  CHECK(select.find("mean over all outputs") != std::string::npos);

  std::string table = element_html(dom, "heatmap", "table");
  INFO(table);
  CHECK(table.find("<thead>") != std::string::npos);
  CHECK(table.find("5 na\xc3\xafve</th>") != std::string::npos);
  CHECK(table.find("3 \u2423\"you\"</th>") != std::string::npos);
  // The token that looks like markup is shown as text inside a row header.
  CHECK(table.find("2 &lt;/script&gt;&lt;b&gt;x&lt;/b&gt;</th>") != std::string::npos);
  CHECK(dom.find("<b>x</b>") == std::string::npos);
  // Hover values: the cell for input 0 / output 0 holds 0.1 in its title.
  CHECK(table.find(": 0.1\"") != std::string::npos);
  CHECK(table.find("background") != std::string::npos);
}
