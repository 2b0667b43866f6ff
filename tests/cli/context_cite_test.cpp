// `pizza local --method context-cite` on stories260K against a brute-force fit: the ablations'
// scores come from `pizza local --target-text` runs on the cut texts and the Lasso is solved
// here by another algorithm (proximal gradient descent instead of coordinate descent). And the
// same seed gives the same attribution over pizza serve.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "cli/brute_force.h"
#include "cli/cli_helpers.h"
#include "support/subprocess.h"

using namespace pizza::test;

namespace {

namespace dom = simdjson::dom;

double logit_of_prob(double p) { return std::log(p) - std::log1p(-p); }

// Lasso by ISTA on the standardised columns (the objective of lib/perturbation/surrogate.h):
// beta <- soft(beta + t Z'(y - Z beta) / n, t alpha) with t = 1/p (each standardised column has
// z.z/n = 1, so the gradient's Lipschitz constant is at most p).
std::vector<double> ista(const std::vector<std::vector<double>>& X, const std::vector<double>& y, double alpha) {
  const size_t n = X.size(), p = X[0].size();
  std::vector<double> mean(p, 0), sd(p, 0);
  for (size_t j = 0; j < p; ++j) {
    for (size_t i = 0; i < n; ++i) mean[j] += X[i][j] / n;
    for (size_t i = 0; i < n; ++i) sd[j] += (X[i][j] - mean[j]) * (X[i][j] - mean[j]) / n;
    sd[j] = std::sqrt(sd[j]);
  }
  double ym = 0;
  for (double v : y) ym += v / n;
  std::vector<double> beta(p, 0);
  const double t = 1.0 / static_cast<double>(p);
  for (int it = 0; it < 200000; ++it) {
    std::vector<double> grad(p, 0);
    for (size_t i = 0; i < n; ++i) {
      double r = y[i] - ym;
      for (size_t j = 0; j < p; ++j) r -= (X[i][j] - mean[j]) / sd[j] * beta[j];
      for (size_t j = 0; j < p; ++j) grad[j] += (X[i][j] - mean[j]) / sd[j] * r / n;
    }
    for (size_t j = 0; j < p; ++j) {
      const double v = beta[j] + t * grad[j];
      beta[j] = v > t * alpha ? v - t * alpha : v < -t * alpha ? v + t * alpha : 0;
    }
  }
  for (size_t j = 0; j < p; ++j) beta[j] /= sd[j];
  return beta;
}

}  // namespace

TEST_CASE("context-cite equals a brute-force fit of the ablations on stories260K") {
  TempDir dir;
  const auto probs = brute_force_probs(dir);
  auto r = run_cli({"local", "-m", stories_dir(), "--prompt", kPrompt, "--spans", kSpansArg, "--target-text", kTarget,
                    "--method", "context-cite", "--seed", "9", "-f", "json", "-q", "--threads", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  dom::parser parser;
  dom::element doc = parser.parse(r.out);
  // The ablations, in order, from the experiment log (the first 64 - 7 train the surrogate).
  std::vector<unsigned> removed;
  for (dom::element e : dom::array(doc["extra"]["experiment_log"]["perturbations"])) {
    std::vector<size_t> units;
    for (dom::element u : dom::array(e["masked_units"])) units.push_back(static_cast<size_t>(int64_t(u)));
    removed.push_back(mask_of(units));
  }
  REQUIRE(removed.size() == 64);
  const size_t train = 64 - 7;
  std::vector<std::vector<double>> X;
  for (size_t a = 0; a < train; ++a) {
    std::vector<double> kept;
    for (size_t u = 0; u < kU; ++u) kept.push_back((removed[a] >> u) & 1u ? 0.0 : 1.0);
    X.push_back(kept);
  }
  std::vector<std::vector<double>> matrix;
  for (dom::element row : dom::array(doc["matrix"])) {
    std::vector<double> v;
    for (dom::element x : dom::array(row)) v.push_back(double(x));
    matrix.push_back(v);
  }
  const size_t rows = matrix.size();
  REQUIRE(rows == probs.at(0).size());
  // Float32 probabilities from two summation orders agree to ~1e-6 relative; the logit divides
  // by 1 - p (p <= ~0.99 here) and the fit sums 57 of them: 2e-3 on weights of order 0.1..3.
  for (size_t t = 0; t < rows; ++t) {
    std::vector<double> y;
    for (size_t a = 0; a < train; ++a) y.push_back(logit_of_prob(probs.at(removed[a])[t]));
    const auto w = ista(X, y, 0.01);
    for (size_t u = 0; u < kU; ++u) CHECK(matrix[t][u] == Approx(w[u]).margin(2e-3));
  }
  // The whole output's surrogate: the logit of the product of the probabilities.
  std::vector<double> y;
  for (size_t a = 0; a < train; ++a) {
    double lp = 0;
    for (double p : probs.at(removed[a])) lp += std::log(p);
    y.push_back(lp - std::log(-std::expm1(lp)));
  }
  const auto w = ista(X, y, 0.01);
  size_t u = 0;
  for (dom::element x : dom::array(doc["extra"]["context_cite"]["sequence"]["weights"])) CHECK(double(x) == Approx(w[u++]).margin(2e-3));
  CHECK(dom::array(doc["row_stats"]["held_out_spearman"]).size() == rows);
}

TEST_CASE("context-cite with the same seed gives the same attribution over pizza serve") {
  PizzaServe server;
  const std::string prompt = "Once upon a time, there was a little girl named Lily.";
  // 5 tokens: see the api tests (a 6th lone " " cannot be scored over HTTP).
  auto api = run_cli({"api", "--base-url", server.base_url(), "--model", "stories260K", "--prompt", prompt, "--unit", "word",
                      "-n", "5", "--method", "context-cite", "--seed", "4", "--endpoint", "completions", "--scoring",
                      "teacher-forced", "--no-cache", "-f", "json", "-q"});
  INFO(api.err);
  REQUIRE(api.exit_code == 0);
  auto local = run_cli({"local", "-m", stories_dir(), "--prompt", prompt, "--unit", "word", "-n", "5", "--method",
                        "context-cite", "--seed", "4", "-f", "json", "-q"});
  REQUIRE(local.exit_code == 0);
  dom::parser p1, p2;
  dom::element a = p1.parse(api.out), l = p2.parse(local.out);
  // The same ablations (the experiment logs' masked units).
  CHECK(simdjson::minify(a["extra"]["experiment_log"]["perturbations"].at(5)["masked_units"]) ==
        simdjson::minify(l["extra"]["experiment_log"]["perturbations"].at(5)["masked_units"]));
  // Same fit up to the two float32 scorings (~1e-5 on log-probabilities, amplified by 1/(1-p)).
  const auto ma = dom::array(a["matrix"]), ml = dom::array(l["matrix"]);
  REQUIRE(ma.size() == ml.size());
  for (size_t r = 0; r < ma.size(); ++r) {
    const auto ra = dom::array(ma.at(r)), rl = dom::array(ml.at(r));
    REQUIRE(ra.size() == rl.size());
    for (size_t c = 0; c < ra.size(); ++c) CHECK(double(ra.at(c)) == Approx(double(rl.at(c))).margin(2e-3));
  }
}
