// ContextCite's surrogate: the Lasso solver against closed-form solutions and the optimality
// (KKT) conditions, and the engine's context-cite method on a fake backend whose logit is
// exactly linear in the kept units (so the surrogate must recover the weights).
// Tolerances: plain double arithmetic on tiny problems, no BLAS or threads; the solver stops
// when no weight moves by more than 1e-13 of the largest, so 1e-9 absorbs its convergence.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "perturbation/engine.h"
#include "perturbation/surrogate.h"
#include "util/error.h"

using namespace pizza;
using namespace pizza::perturbation;

namespace {

double soft(double x, double a) { return x > a ? x - a : x < -a ? x + a : 0.0; }

// The 2^3 full factorial design: every combination of three 0/1 columns. Its centred columns
// are orthogonal, so the standardised Lasso decouples: beta_j = soft(z_j . y / n, alpha).
std::vector<double> factorial() {
  std::vector<double> X;
  for (int r = 0; r < 8; ++r)
    for (int j = 0; j < 3; ++j) X.push_back((r >> j) & 1);
  return X;
}

// Logit of the output token's probability = bias + sum of the weights of the kept units; units
// are the words "a", " b", ... and a unit is kept when its letter is in the prompt text.
class LinearLogitFake : public PerturbationBackend {
 public:
  LinearLogitFake(std::vector<double> w, double bias) : weights(std::move(w)), bias(bias) {}
  std::vector<double> weights;
  double bias;
  double logprob(const std::string& text) const {
    double logit = bias;
    for (size_t i = 0; i < weights.size(); ++i)
      if (text.find(static_cast<char>('a' + i)) != std::string::npos) logit += weights[i];
    return -std::log1p(std::exp(-logit));  // log sigmoid
  }
  std::vector<Generation> complete(std::span<const Prompt> prompts) override {
    std::vector<Generation> out;
    for (const auto& p : prompts) {
      const double lp = logprob(p.text);
      out.push_back({"x", {{"x", 7, lp, {{"x", 7, lp}}}}});
    }
    return out;
  }
  bool can_score() const override { return true; }
  std::vector<std::vector<double>> score(std::span<const Prompt> prompts, const Generation&) override {
    std::vector<std::vector<double>> out;
    for (const auto& p : prompts) out.push_back({logprob(p.text)});
    return out;
  }
  std::string describe() const override { return "fake"; }
};

}  // namespace

TEST_CASE("lasso: an orthogonal design is soft-thresholding of each column's correlation") {
  const auto X = factorial();
  const std::vector<double> y{0.3, 1.9, -0.4, 2.2, 0.1, 1.5, 0.8, 3.0};
  for (double alpha : {0.0, 0.05, 0.3, 10.0}) {
    const auto fit = lasso(X, 8, 3, y, alpha);
    double ymean = 0;
    for (double v : y) ymean += v / 8;
    double intercept = ymean;
    for (int j = 0; j < 3; ++j) {
      // Column mean 0.5, population sd 0.5: z = 2x - 1.
      double zy = 0;
      for (int r = 0; r < 8; ++r) zy += (2 * X[static_cast<size_t>(r * 3 + j)] - 1) * (y[static_cast<size_t>(r)] - ymean);
      const double w = soft(zy / 8, alpha) / 0.5;
      CHECK(fit.weights[static_cast<size_t>(j)] == Approx(w).margin(1e-12));
      intercept -= w * 0.5;
    }
    CHECK(fit.intercept == Approx(intercept).margin(1e-12));
  }
}

TEST_CASE("lasso: a random problem satisfies the optimality conditions") {
  std::mt19937_64 rng(11);
  const size_t n = 60, p = 12;
  std::vector<double> X(n * p), y(n);
  for (auto& x : X) x = static_cast<double>(rng() & 1);
  for (size_t i = 0; i < n; ++i) {
    y[i] = 0.5 + 2.0 * X[i * p] - 1.0 * X[i * p + 3] + 0.3 * X[i * p + 7];
    y[i] += static_cast<double>(rng() >> 11) * 0x1.0p-53 - 0.5;  // noise
  }
  const double alpha = 0.05;
  const auto fit = lasso(X, n, p, y, alpha);
  // Recompute the standardised problem here: r = y - intercept - X w; for each column,
  // g_j = z_j . r / n must equal alpha * sign(beta_j) when beta_j != 0 and lie in [-alpha, alpha]
  // when beta_j = 0 (the subgradient condition of the Lasso objective).
  std::vector<double> r(n);
  for (size_t i = 0; i < n; ++i) {
    r[i] = y[i] - fit.intercept;
    for (size_t j = 0; j < p; ++j) r[i] -= X[i * p + j] * fit.weights[j];
  }
  size_t nonzero = 0;
  for (size_t j = 0; j < p; ++j) {
    double m = 0, sd = 0;
    for (size_t i = 0; i < n; ++i) m += X[i * p + j] / n;
    for (size_t i = 0; i < n; ++i) sd += (X[i * p + j] - m) * (X[i * p + j] - m) / n;
    sd = std::sqrt(sd);
    double g = 0;
    for (size_t i = 0; i < n; ++i) g += (X[i * p + j] - m) / sd * r[i] / n;
    if (fit.weights[j] != 0) {
      ++nonzero;
      CHECK(g == Approx(fit.weights[j] > 0 ? alpha : -alpha).margin(1e-9));
    } else {
      CHECK(std::fabs(g) <= alpha + 1e-9);
    }
  }
  // The three true effects are found (and the residual mean is zero: the intercept is optimal).
  CHECK(fit.weights[0] > 1.5);
  CHECK(fit.weights[3] < -0.5);
  CHECK(nonzero >= 3);
  double rmean = 0;
  for (double v : r) rmean += v / n;
  CHECK(rmean == Approx(0.0).margin(1e-12));
}

TEST_CASE("lasso: constant columns get no weight and the logit target is bounded") {
  const std::vector<double> X{1, 0, 1, 1, 1, 0, 1, 1};  // column 0 always 1
  const std::vector<double> y{1, 2, 1, 2};
  const auto fit = lasso(X, 4, 2, y, 0);
  CHECK(fit.weights[0] == 0.0);
  CHECK(fit.weights[1] == Approx(1.0).margin(1e-12));
  CHECK(fit.intercept == Approx(1.0).margin(1e-12));
  CHECK(logit_of_logprob(std::log(0.5)) == Approx(0.0).margin(1e-15));
  CHECK(logit_of_logprob(std::log(0.9)) == Approx(std::log(9.0)).epsilon(1e-12));
  CHECK(std::isfinite(logit_of_logprob(0.0)));
  CHECK(logit_of_logprob(0.0) == Approx(27.631).epsilon(1e-4));  // -log(1e-12)
}

TEST_CASE("context-cite recovers the exact weights of a logit-linear backend") {
  const std::vector<double> w{1.5, 0.0, -0.7, 0.25, 2.0, 0.0};
  LinearLogitFake fake(w, -0.5);
  UnitSpec spec;
  spec.kind = UnitKind::word;
  const auto units = make_units("a b c d e f", {}, spec);
  Perturber perturber(units, {}, nullptr, nullptr, false, std::nullopt);
  EngineOptions eo;
  eo.algorithm = Algorithm::context_cite;
  eo.scoring = Scoring::teacher_forced;
  eo.context_cite.lasso_alpha = 0;  // least squares: an exactly linear target is fitted exactly
  eo.context_cite.seed = 3;
  const auto er = run_engine(fake, perturber, eo);
  REQUIRE(er.matrices.size() == 1);
  CHECK(er.matrices[0].name == "surrogate-logit");
  for (size_t u = 0; u < w.size(); ++u) CHECK(er.matrices[0].at(0, u) == Approx(w[u]).margin(1e-9));
  REQUIRE(er.row_fits.size() == 1);
  CHECK(er.row_fits[0].intercept == Approx(-0.5).margin(1e-9));
  CHECK(er.row_fits[0].held_out_spearman == Approx(1.0).margin(1e-12));
  REQUIRE(er.sequence_fit);  // one output token: the whole output is that token
  for (size_t u = 0; u < w.size(); ++u) CHECK(er.sequence_fit->weights[u] == Approx(w[u]).margin(1e-9));
  CHECK(er.model_calls == 2 + 64);  // the original's completion and score, then one batch of ablations

  // The default alpha shrinks each standardised weight by 0.01: about 0.02 in mask units.
  eo.context_cite.lasso_alpha = 0.01;
  const auto shrunk = run_engine(fake, perturber, eo);
  for (size_t u = 0; u < w.size(); ++u) CHECK(shrunk.matrices[0].at(0, u) == Approx(w[u]).margin(0.05));
  // Another seed draws other ablations.
  eo.context_cite.seed = 4;
  const auto other = run_engine(fake, perturber, eo);
  CHECK(other.evaluations[0].units != shrunk.evaluations[0].units);
}

TEST_CASE("context-cite options out of range are usage errors") {
  ContextCiteOptions o;
  o.ablations = 3;
  CHECK_THROWS_WITH(check_context_cite(o), Catch::Contains("--ablations"));
  o = {};
  o.keep_prob = 0;
  CHECK_THROWS_WITH(check_context_cite(o), Catch::Contains("--keep-prob"));
  o = {};
  o.lasso_alpha = -1;
  CHECK_THROWS_WITH(check_context_cite(o), Catch::Contains("--lasso-alpha"));
  CHECK(parse_algorithm("context-cite") == Algorithm::context_cite);
}
