// `pizza local`'s gradient attribution splits each chunk's rows across --threads concurrent
// backward passes: the attribution must not depend on how many there are.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cmath>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

std::vector<std::vector<double>> matrix_of(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  std::vector<std::vector<double>> rows;
  for (auto row : doc["matrix"].get_array()) {
    rows.emplace_back();
    for (auto v : row.get_array()) rows.back().push_back(v.get_double());
  }
  return rows;
}

}  // namespace

// --threads N changes the shapes of the backward's matrix products (a chunk's rows are split
// into N groups), so the summation order changes and float32 results legitimately differ in
// their last bits; the algorithm's claim, the same attribution, is checked in float64.
TEST_CASE("cli: local gradient attribution is the same with 1, 2 and 3 threads", "[cli]") {
  struct Precision {
    const char* dtype;
    double tolerance;  // relative to the row's largest |score|
  };
  const Precision precisions[] = {
      // float64 unit roundoff 1.1e-16: a different summation order moves scores by ~1e-14 of
      // the row maximum; a misassigned or dropped row moves them by O(1).
      {"float64", 1e-12},
      // float32 unit roundoff u = 6e-8; stories260K's longest dot product is the 512-term vocab
      // projection (worst-case order error 512u = 3e-5 of its |terms|), and signed input x
      // gradient / IG scores are sums over 64 hidden dims whose |terms| add up to a few row
      // maxima. 1e-4 of the row max covers that on every OpenBLAS kernel (observed <= 1e-5).
      {"float32", 1e-4}};
  for (const auto& precision : precisions) {
    for (const char* method : {"saliency", "input-x-gradient", "integrated-gradients"}) {
      INFO(precision.dtype << " method " << method);
      auto run = [&](const char* threads) {
        std::vector<std::string> args = {"local",  "--model", stories_dir(), "-p",        "Once upon a time there was",
                                         "-n",     "5",       "--method",    method,      "--format",
                                         "json",   "--threads", threads,     "--dtype",   precision.dtype};
        if (std::string_view(method) == "integrated-gradients") args.insert(args.end(), {"--ig-steps", "4"});
        auto r = run_cli(args);
        INFO("stderr: " << r.err);
        REQUIRE(r.exit_code == 0);
        return matrix_of(r.out);
      };
      const auto one = run("1");
      REQUIRE(one.size() == 5);
      for (const char* threads : {"2", "3"}) {
        const auto many = run(threads);
        REQUIRE(many.size() == one.size());
        for (size_t t = 0; t < one.size(); ++t) {
          REQUIRE(many[t].size() == one[t].size());
          double scale = 0;
          for (double v : one[t]) scale = std::max(scale, std::fabs(v));
          REQUIRE(scale > 0);
          for (size_t i = 0; i < one[t].size(); ++i) {
            INFO("threads " << threads << " row " << t << " column " << i);
            CHECK(std::fabs(many[t][i] - one[t][i]) <= precision.tolerance * scale);
          }
        }
      }
    }
  }
}
