#include <catch2/catch.hpp>

#include <filesystem>

#include "report/report.h"
#include "report_fixtures.h"
#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"

namespace {

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
