#include "eval/faithfulness.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>

#include "perturbation/surrogate.h"
#include "util/error.h"
#include "util/json_writer.h"
#include "util/split.h"

namespace pizza::eval {

namespace {

constexpr std::pair<Metric, std::string_view> kMetricNames[] = {
    {Metric::deletion, "deletion"}, {Metric::insertion, "insertion"}, {Metric::abpc, "abpc"},
    {Metric::topk, "topk"},         {Metric::lds, "lds"},
};

bool has(const Options& o, Metric m) { return std::find(o.metrics.begin(), o.metrics.end(), m) != o.metrics.end(); }

// Uniform double in [0, 1) from the top 53 bits: the same on every standard library.
double unit_uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Distinct removed-unit sets, in first-request order.
class SetTable {
 public:
  size_t add(std::vector<size_t> removed) {
    std::sort(removed.begin(), removed.end());
    auto [it, inserted] = index_.emplace(std::move(removed), sets_.size());
    if (inserted) sets_.push_back(it->first);
    return it->second;
  }
  const std::vector<std::vector<size_t>>& sets() const { return sets_; }

 private:
  std::map<std::vector<size_t>, size_t> index_;
  std::vector<std::vector<size_t>> sets_;
};

std::vector<size_t> first_k(const std::vector<size_t>& order, size_t k) { return {order.begin(), order.begin() + k}; }
std::vector<size_t> after_k(const std::vector<size_t>& order, size_t k) { return {order.begin() + k, order.end()}; }

// What one ranking is scored on: all rows (sequence level) or one row (token level).
struct View {
  std::vector<double> scores;  // per unit
  std::optional<size_t> row;   // token level: the only row scored
};

// The set indices one view needs.
struct ViewPlan {
  std::vector<size_t> order;
  std::vector<size_t> morf, lerf, insertion, topk;  // set index per curve point / per k
};

}  // namespace

std::vector<Metric> parse_metrics(std::string_view csv) {
  std::vector<Metric> out;
  for (const auto& raw : split(csv, ',')) {
    const auto name = trim(raw);
    const auto it = std::find_if(std::begin(kMetricNames), std::end(kMetricNames),
                                 [&](const auto& p) { return p.second == name; });
    if (it == std::end(kMetricNames))
      throw UsageError("--metrics: unknown metric '" + std::string(name) +
                       "' (expected deletion, insertion, abpc, topk or lds)");
    if (std::find(out.begin(), out.end(), it->first) == out.end()) out.push_back(it->first);
  }
  if (out.empty()) throw UsageError("--metrics: no metric given");
  return out;
}

std::string_view metric_name(Metric m) {
  for (const auto& [metric, name] : kMetricNames)
    if (metric == m) return name;
  return "?";
}

Level parse_level(std::string_view name) {
  if (name == "sequence") return Level::sequence;
  if (name == "token") return Level::token;
  throw UsageError("--level: unknown value '" + std::string(name) + "' (expected sequence or token)");
}

std::string_view level_name(Level l) { return l == Level::sequence ? "sequence" : "token"; }

bool higher_is_better(Metric m) { return m != Metric::deletion; }

void check_options(const Options& o) {
  if (o.metrics.empty()) throw UsageError("--metrics: no metric given");
  if (has(o, Metric::topk)) {
    if (o.k.empty()) throw UsageError("--k: no value given");
    for (auto k : o.k)
      if (k == 0) throw UsageError("--k: values must be positive, got 0");
  }
  if (has(o, Metric::lds) && o.ablations < 2)
    throw UsageError("--ablations must be at least 2 for lds (a correlation needs two points), got " +
                     std::to_string(o.ablations));
  if (!(o.keep_prob > 0 && o.keep_prob < 1))
    throw UsageError("--keep-prob must be strictly between 0 and 1, got " + std::to_string(o.keep_prob));
}

MethodScores random_scores(size_t rows, size_t units, size_t count, uint64_t seed) {
  MethodScores m;
  m.method = "random";
  m.rows = rows;
  m.units = units;
  for (size_t d = 0; d < count; ++d) {
    std::mt19937_64 rng(seed * 1000003u + d);
    std::vector<double> v(rows * units);
    for (auto& x : v) x = unit_uniform(rng);
    m.draws.push_back(std::move(v));
  }
  return m;
}

std::vector<size_t> ranking(std::span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

std::vector<size_t> curve_points(size_t units) {
  std::vector<size_t> ks;
  if (units <= 20) {
    for (size_t k = 0; k <= units; ++k) ks.push_back(k);
  } else {
    // round(i * U / 20) in integers: (2 i U + 20) / 40.
    for (size_t i = 0; i <= 20; ++i) ks.push_back((2 * i * units + 20) / 40);
  }
  return ks;
}

double trapezoid(std::span<const double> x, std::span<const double> y) {
  double area = 0;
  for (size_t i = 1; i < x.size() && i < y.size(); ++i) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  return area;
}

double t_quantile_975(size_t df) {
  // Two-sided 95% quantiles of Student's t (standard tables), interpolated in 1/df beyond 30.
  static constexpr double kTable[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                      2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                      2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df == 0) return 0;
  if (df <= 30) return kTable[df - 1];
  static constexpr std::pair<double, double> kTail[] = {{30, 2.042}, {40, 2.021}, {60, 2.000}, {120, 1.980}};
  const double inv = 1.0 / static_cast<double>(df);
  for (size_t i = 1; i < std::size(kTail); ++i) {
    const auto [d0, t0] = kTail[i - 1];
    const auto [d1, t1] = kTail[i];
    if (static_cast<double>(df) <= d1) return t0 + (t1 - t0) * (inv - 1 / d0) / (1 / d1 - 1 / d0);
  }
  // Between 120 and infinity (1.960).
  return 1.960 + (1.980 - 1.960) * inv * 120;
}

PromptEval evaluate_prompt(std::span<const MethodScores> methods, const Options& opts, const ScoreFn& score,
                           uint64_t prompt_seed) {
  check_options(opts);
  if (methods.empty()) throw UsageError("pizza eval: no method to evaluate");
  const size_t R = methods.front().rows, U = methods.front().units;
  if (R == 0) throw InputError("there is no output token to evaluate");
  if (U == 0) throw InputError("the prompt has no unit that can be removed");
  for (const auto& m : methods) {
    if (m.rows != R || m.units != U || m.draws.empty())
      throw std::logic_error("method " + m.method + ": attribution shape differs from the prompt's (" +
                          std::to_string(m.rows) + " x " + std::to_string(m.units) + " vs " + std::to_string(R) +
                          " x " + std::to_string(U) + ")");
    for (const auto& d : m.draws)
      if (d.size() != R * U) throw std::logic_error("method " + m.method + ": ragged attribution matrix");
  }
  const bool want_del = has(opts, Metric::deletion), want_ins = has(opts, Metric::insertion);
  const bool want_abpc = has(opts, Metric::abpc), want_topk = has(opts, Metric::topk), want_lds = has(opts, Metric::lds);
  const auto ks = curve_points(U);
  std::vector<double> xs;
  for (auto k : ks) xs.push_back(static_cast<double>(k) / static_cast<double>(U));

  SetTable table;
  const size_t empty_set = table.add({});
  std::vector<size_t> all(U);
  std::iota(all.begin(), all.end(), size_t{0});

  // LDS masks, shared by every method: the removed units of each.
  std::vector<std::vector<bool>> masks;
  std::vector<size_t> mask_sets;
  if (want_lds) {
    // Salted so that they never coincide with ContextCite's ablations of the same seed (a
    // surrogate fitted on the very masks LDS tests would be graded on its training data).
    masks = perturbation::ablation_masks(U, opts.ablations, opts.keep_prob,
                                         (opts.seed ^ 0x4C44535F4D41534Bull) + prompt_seed * 0x9E3779B97F4A7C15ull);
    for (const auto& m : masks) {
      std::vector<size_t> removed;
      for (size_t u = 0; u < U; ++u)
        if (!m[u]) removed.push_back(u);
      mask_sets.push_back(table.add(std::move(removed)));
    }
  }

  // Views of every draw of every method, and the sets each needs.
  auto views_of = [&](const std::vector<double>& matrix) {
    std::vector<View> views;
    if (opts.level == Level::sequence) {
      View v;
      v.scores.assign(U, 0.0);
      for (size_t r = 0; r < R; ++r)
        for (size_t u = 0; u < U; ++u) v.scores[u] += matrix[r * U + u];
      views.push_back(std::move(v));
    } else {
      for (size_t r = 0; r < R; ++r) views.push_back({{matrix.begin() + static_cast<std::ptrdiff_t>(r * U),
                                                       matrix.begin() + static_cast<std::ptrdiff_t>((r + 1) * U)},
                                                      r});
    }
    return views;
  };
  std::vector<std::vector<std::vector<View>>> views(methods.size());      // [method][draw][view]
  std::vector<std::vector<std::vector<ViewPlan>>> plans(methods.size());
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    for (const auto& draw : methods[mi].draws) {
      auto vs = views_of(draw);
      std::vector<ViewPlan> ps;
      for (const auto& v : vs) {
        ViewPlan p;
        p.order = ranking(v.scores);
        std::vector<size_t> reversed(p.order.rbegin(), p.order.rend());
        for (auto k : ks) {
          if (want_del || want_abpc) p.morf.push_back(table.add(first_k(p.order, k)));
          if (want_abpc) p.lerf.push_back(table.add(first_k(reversed, k)));
          if (want_ins) p.insertion.push_back(table.add(after_k(p.order, k)));
        }
        if (want_topk)
          for (auto k : opts.k) p.topk.push_back(table.add(first_k(p.order, std::min(k, U))));
        ps.push_back(std::move(p));
      }
      views[mi].push_back(std::move(vs));
      plans[mi].push_back(std::move(ps));
    }
  }

  const auto& sets = table.sets();
  const auto logprobs = score(sets);
  if (logprobs.size() != sets.size()) throw std::logic_error("scorer returned a wrong number of results");
  for (const auto& lp : logprobs) {
    if (lp.size() != R) throw std::logic_error("scorer returned a wrong number of output tokens");
    for (double v : lp)
      if (!std::isfinite(v) || v > 0)
        throw InputError("the model gave log-probability " + format_number_text(v) +
                         " to an output token after a perturbed prompt: the metrics would not be numbers");
  }

  // f and L of a set for a view.
  auto f_of = [&](size_t set, const View& v) {
    const auto& lp = logprobs[set];
    if (v.row) return std::exp(lp[*v.row]);
    double s = 0;
    for (double x : lp) s += std::exp(x);
    return s / static_cast<double>(R);
  };
  auto L_of = [&](size_t set, const View& v) {
    const auto& lp = logprobs[set];
    if (v.row) return lp[*v.row];
    return std::accumulate(lp.begin(), lp.end(), 0.0);
  };

  PromptEval out;
  out.units = U;
  out.rows = R;
  out.original_logprobs = logprobs[empty_set];
  out.scored_sets = sets.size();
  out.lds_masks = masks;
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    MethodEval me;
    me.method = methods[mi].method;
    me.time_ms = methods[mi].time_ms;
    me.model_calls = methods[mi].model_calls;
    {
      // The sequence-level ranking (column sums of the first draw), whatever the level.
      std::vector<double> col(U, 0.0);
      for (size_t r = 0; r < R; ++r)
        for (size_t u = 0; u < U; ++u) col[u] += methods[mi].draws[0][r * U + u];
      me.ranking = ranking(col);
    }
    double del = 0, ins = 0, abpc = 0, lds = 0;
    std::vector<double> del_curve(ks.size(), 0.0), ins_curve(ks.size(), 0.0), topk(opts.k.size(), 0.0);
    size_t n = 0;
    for (size_t d = 0; d < plans[mi].size(); ++d) {
      for (size_t vi = 0; vi < plans[mi][d].size(); ++vi) {
        const auto& v = views[mi][d][vi];
        const auto& p = plans[mi][d][vi];
        ++n;
        std::vector<double> fm, fl, fi;
        for (size_t i = 0; i < ks.size(); ++i) {
          if (!p.morf.empty()) fm.push_back(f_of(p.morf[i], v));
          if (!p.lerf.empty()) fl.push_back(f_of(p.lerf[i], v));
          if (!p.insertion.empty()) fi.push_back(f_of(p.insertion[i], v));
        }
        for (size_t i = 0; i < fm.size(); ++i) del_curve[i] += fm[i];
        for (size_t i = 0; i < fi.size(); ++i) ins_curve[i] += fi[i];
        const double auc_m = fm.empty() ? 0 : trapezoid(xs, fm);
        del += auc_m;
        if (!fi.empty()) ins += trapezoid(xs, fi);
        if (!fl.empty()) abpc += trapezoid(xs, fl) - auc_m;
        const double base = L_of(empty_set, v);
        for (size_t i = 0; i < p.topk.size(); ++i) topk[i] += base - L_of(p.topk[i], v);
        if (want_lds) {
          std::vector<double> lx, ly;
          for (size_t a = 0; a < masks.size(); ++a) {
            lx.push_back(L_of(mask_sets[a], v));
            double kept = 0;
            for (size_t u = 0; u < U; ++u)
              if (masks[a][u]) kept += v.scores[u];
            ly.push_back(kept);
          }
          lds += perturbation::spearman(lx, ly);
        }
      }
    }
    const double dn = static_cast<double>(n);
    if (want_del) me.deletion = del / dn;
    if (want_ins) me.insertion = ins / dn;
    if (want_abpc) me.abpc = abpc / dn;
    if (want_lds) me.lds = lds / dn;
    if (want_topk)
      for (size_t i = 0; i < opts.k.size(); ++i) me.topk.emplace_back(opts.k[i], topk[i] / dn);
    if (want_del || want_abpc) {
      me.deletion_curve.x = xs;
      for (auto v : del_curve) me.deletion_curve.f.push_back(v / dn);
    }
    if (want_ins) {
      me.insertion_curve.x = xs;
      for (auto v : ins_curve) me.insertion_curve.f.push_back(v / dn);
    }
    out.methods.push_back(std::move(me));
  }
  return out;
}

}  // namespace pizza::eval
