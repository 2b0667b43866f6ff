// Closed-form checks of the faithfulness metrics with a fake model whose log-probability is
// additive in the removed units: log p(y | prompt without S) = -sum_{u in S} w_u. For such a
// model the true weights are the perfect attribution, and every metric's best value is known.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <set>

#include "eval/faithfulness.h"
#include "perturbation/surrogate.h"
#include "util/error.h"

using namespace pizza::eval;

namespace {

// Rows: row r's log-probability is -sum_{u in S} w[r][u].
struct AdditiveModel {
  explicit AdditiveModel(std::vector<std::vector<double>> weights) : w(std::move(weights)) {}
  std::vector<std::vector<double>> w;  // [row][unit]
  size_t calls = 0;
  std::vector<std::vector<size_t>> seen;
  std::vector<std::vector<double>> operator()(const std::vector<std::vector<size_t>>& removed) {
    ++calls;
    seen = removed;
    std::vector<std::vector<double>> out;
    for (const auto& s : removed) {
      std::vector<double> lp;
      for (const auto& row : w) {
        double x = 0;
        for (auto u : s) x -= row[u];
        lp.push_back(x);
      }
      out.push_back(lp);
    }
    return out;
  }
};

MethodScores method(std::string name, const std::vector<std::vector<double>>& m) {
  MethodScores s;
  s.method = std::move(name);
  s.rows = m.size();
  s.units = m.at(0).size();
  std::vector<double> flat;
  for (const auto& r : m) flat.insert(flat.end(), r.begin(), r.end());
  s.draws.push_back(flat);
  return s;
}

std::vector<std::vector<double>> negated(std::vector<std::vector<double>> m) {
  for (auto& r : m)
    for (auto& x : r) x = -x;
  return m;
}

const MethodEval& find(const PromptEval& e, const std::string& name) {
  for (const auto& m : e.methods)
    if (m.method == name) return m;
  FAIL("no method " << name);
  throw;
}

}  // namespace

TEST_CASE("eval: true weights of an additive model score best on every metric and reversed weights worst") {
  // Powers of two: every subset has a distinct sum, exact in binary floating point, so that no
  // two masks tie on one side of the LDS correlation and not on the other. 7 units.
  const std::vector<std::vector<double>> w{{0x1p-1, 0x1p-6, 0x1p-3, 0x1p-5, 0x1p-2, 0x1p-7, 0x1p-4}};
  AdditiveModel model(w);
  const std::vector<MethodScores> methods{method("truth", w), method("reversed", negated(w)),
                                          random_scores(1, 7, 10, 42)};
  Options o;
  o.ablations = 64;
  const auto e = evaluate_prompt(methods, o, std::ref(model), 0);
  CHECK(model.calls == 1);
  // Every set is scored once.
  CHECK(std::set<std::vector<size_t>>(model.seen.begin(), model.seen.end()).size() == model.seen.size());
  CHECK(e.scored_sets == model.seen.size());

  const auto &t = find(e, "truth"), &r = find(e, "reversed"), &x = find(e, "random");
  CHECK(*t.deletion < *x.deletion);
  CHECK(*x.deletion < *r.deletion);
  CHECK(*t.insertion > *x.insertion);
  CHECK(*x.insertion > *r.insertion);
  CHECK(*t.abpc > *x.abpc);
  CHECK(*x.abpc > *r.abpc);
  CHECK(*t.lds > *x.lds);
  CHECK(*x.lds > *r.lds);
  // LDS: L(removed) = sum(kept w) - sum(all w) is an increasing function of the kept weights'
  // sum, so the rank correlation is exactly 1 (and -1 for the reversed scores).
  CHECK(*t.lds == Approx(1.0).margin(1e-12));
  CHECK(*r.lds == Approx(-1.0).margin(1e-12));
  // Top-k drop = the sum of the k largest weights (float64: a handful of additions).
  std::vector<double> sorted = w[0];
  std::sort(sorted.rbegin(), sorted.rend());
  REQUIRE(t.topk.size() == 3);
  for (const auto& [k, drop] : t.topk)
    CHECK(drop == Approx(std::accumulate(sorted.begin(), sorted.begin() + static_cast<long>(k), 0.0)).margin(1e-12));
  // The reversed ranking removes the smallest weights first.
  for (const auto& [k, drop] : r.topk)
    CHECK(drop == Approx(std::accumulate(sorted.rbegin(), sorted.rbegin() + static_cast<long>(k), 0.0)).margin(1e-12));
  CHECK(t.ranking == std::vector<size_t>{0, 4, 2, 6, 3, 1, 5});
}

TEST_CASE("eval: deletion and insertion AUCs equal a hand computation") {
  const std::vector<std::vector<double>> w{{0.4, 0.1, 0.3, 0.2}};
  AdditiveModel model(w);
  Options o;
  o.metrics = {Metric::deletion, Metric::insertion, Metric::abpc};
  const auto e = evaluate_prompt(std::vector{method("truth", w)}, o, std::ref(model), 0);
  const auto& m = e.methods.at(0);
  // Ranking 0, 2, 3, 1. Deletion removes the top k: cumulative weights 0, .4, .7, .9, 1.0.
  const double d[] = {1, std::exp(-0.4), std::exp(-0.7), std::exp(-0.9), std::exp(-1.0)};
  double auc = 0;
  for (int i = 0; i < 4; ++i) auc += 0.25 * (d[i] + d[i + 1]) / 2;
  CHECK(*m.deletion == Approx(auc).epsilon(1e-14));
  // Insertion keeps the top k: removed weight 1.0, .6, .3, .1, 0.
  const double ins[] = {std::exp(-1.0), std::exp(-0.6), std::exp(-0.3), std::exp(-0.1), 1};
  double auc_i = 0;
  for (int i = 0; i < 4; ++i) auc_i += 0.25 * (ins[i] + ins[i + 1]) / 2;
  CHECK(*m.insertion == Approx(auc_i).epsilon(1e-14));
  // Least relevant first: 1, 3, 2, 0: cumulative .1, .3, .6, 1.0.
  const double l[] = {1, std::exp(-0.1), std::exp(-0.3), std::exp(-0.6), std::exp(-1.0)};
  double auc_l = 0;
  for (int i = 0; i < 4; ++i) auc_l += 0.25 * (l[i] + l[i + 1]) / 2;
  CHECK(*m.abpc == Approx(auc_l - auc).epsilon(1e-12));
  REQUIRE(m.deletion_curve.f.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(m.deletion_curve.f[static_cast<size_t>(i)] == Approx(d[i]).epsilon(1e-14));
  CHECK(m.deletion_curve.x == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(!m.lds);
  CHECK(m.topk.empty());
}

TEST_CASE("eval: the token level ranks each row by its own scores") {
  // Two output tokens that depend on different units: sequence-level sums mix them, token level
  // separates them. Row 0 depends on unit 0 only, row 1 on unit 2 only.
  const std::vector<std::vector<double>> w{{1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}};
  AdditiveModel model(w);
  Options o;
  o.level = Level::token;
  o.k = {1};
  o.metrics = {Metric::topk, Metric::deletion};
  const auto e = evaluate_prompt(std::vector{method("truth", w), method("swapped", {{0, 0, 1}, {1, 0, 0}})}, o,
                                 std::ref(model), 0);
  // Truth: each row's top unit is its own: drop 1 for both rows.
  CHECK(find(e, "truth").topk.at(0).second == Approx(1.0).margin(1e-15));
  // Swapped: each row removes the other row's unit: no drop.
  CHECK(find(e, "swapped").topk.at(0).second == Approx(0.0).margin(1e-15));
  CHECK(*find(e, "truth").deletion < *find(e, "swapped").deletion);
}

TEST_CASE("eval: k above the number of units removes every unit") {
  const std::vector<std::vector<double>> w{{0.5, 0.25}};
  AdditiveModel model(w);
  Options o;
  o.metrics = {Metric::topk};
  o.k = {1, 5};
  const auto e = evaluate_prompt(std::vector{method("truth", w)}, o, std::ref(model), 0);
  CHECK(e.methods[0].topk.at(0) == std::pair<size_t, double>{1, 0.5});
  CHECK(e.methods[0].topk.at(1).first == 5);
  CHECK(e.methods[0].topk.at(1).second == Approx(0.75).margin(1e-15));
}

TEST_CASE("eval: curve points are every k up to 20 units and 21 evenly spaced beyond") {
  CHECK(curve_points(1) == std::vector<size_t>{0, 1});
  CHECK(curve_points(20).size() == 21);
  const auto p = curve_points(100);
  REQUIRE(p.size() == 21);
  CHECK(p.front() == 0);
  CHECK(p.back() == 100);
  CHECK(p[1] == 5);
  const auto q = curve_points(33);  // round(i * 33 / 20)
  CHECK(q[1] == 2);                 // 1.65
  CHECK(q[10] == 17);               // 16.5 rounds half up
  CHECK(std::set<size_t>(q.begin(), q.end()).size() == 21);
}

TEST_CASE("eval: Spearman uses average ranks and is 0 for a constant side") {
  const std::vector<double> a{1, 2, 3, 4}, b{10, 20, 30, 40}, c{4, 3, 2, 1}, k{5, 5, 5, 5};
  CHECK(pizza::perturbation::spearman(a, b) == Approx(1.0).margin(1e-15));
  CHECK(pizza::perturbation::spearman(a, c) == Approx(-1.0).margin(1e-15));
  CHECK(pizza::perturbation::spearman(a, k) == 0.0);
  // Ties: ranks of {1, 2, 2, 3} are {1, 2.5, 2.5, 4}; against {1, 2, 3, 4}: rho = 0.9486832980505138
  // (Pearson of the rank vectors by hand: 4.5 / sqrt(5 * 4.5)).
  const std::vector<double> t{1, 2, 2, 3};
  CHECK(pizza::perturbation::spearman(a, t) == Approx(0.9486832980505138).epsilon(1e-12));
}

TEST_CASE("eval: masks and random scores are reproducible from the seed") {
  CHECK(pizza::perturbation::ablation_masks(10, 5, 0.5, 7) == pizza::perturbation::ablation_masks(10, 5, 0.5, 7));
  CHECK(pizza::perturbation::ablation_masks(10, 5, 0.5, 7) != pizza::perturbation::ablation_masks(10, 5, 0.5, 8));
  const auto m = pizza::perturbation::ablation_masks(1000, 1, 0.3, 1);
  const auto kept = std::count(m[0].begin(), m[0].end(), true);
  CHECK(kept > 240);  // binomial(1000, 0.3): mean 300, sd 14.5
  CHECK(kept < 360);
  const auto r = random_scores(2, 3, 10, 5);
  CHECK(r.draws.size() == 10);
  CHECK(r.draws == random_scores(2, 3, 10, 5).draws);
  for (const auto& d : r.draws)
    for (double x : d) CHECK((x >= 0 && x < 1));
}

TEST_CASE("eval: bad options and shapes are clear errors") {
  CHECK_THROWS_WITH(parse_metrics("deletion,bogus"), Catch::Contains("unknown metric 'bogus'"));
  CHECK(parse_metrics(" lds , topk") == std::vector<Metric>{Metric::lds, Metric::topk});
  CHECK_THROWS_AS(parse_level("row"), pizza::UsageError);
  Options o;
  o.k = {0};
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--k"));
  o = {};
  o.keep_prob = 1;
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--keep-prob"));
  o = {};
  o.ablations = 1;
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--ablations"));
  AdditiveModel model(std::vector<std::vector<double>>{});
  MethodScores none;
  none.method = "x";
  none.rows = 1;
  none.units = 0;
  none.draws = {{}};
  CHECK_THROWS_AS(evaluate_prompt(std::vector{none}, Options{}, std::ref(model), 0), pizza::InputError);
}

TEST_CASE("eval: t quantiles match the standard table") {
  CHECK(t_quantile_975(1) == Approx(12.706));
  CHECK(t_quantile_975(9) == Approx(2.262));
  CHECK(t_quantile_975(39) == Approx(2.023).margin(0.002));
  CHECK(t_quantile_975(100000) == Approx(1.960).margin(0.001));
}
