#include "perturbation/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "perturbation/surrogate.h"
#include "util/error.h"
#include "util/json_writer.h"

namespace pizza::perturbation {

std::optional<Algorithm> find_algorithm(std::string_view name) {
  if (name == "occlusion") return Algorithm::occlusion;
  if (name == "hierarchical") return Algorithm::hierarchical;
  if (name == "context-cite") return Algorithm::context_cite;
  return std::nullopt;
}

Algorithm parse_algorithm(std::string_view name) {
  if (auto a = find_algorithm(name)) return *a;
  throw UsageError("--method: unknown perturbation method '" + std::string(name) +
                   "' (expected occlusion, hierarchical or context-cite)");
}

std::string_view algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::occlusion: return "occlusion";
    case Algorithm::hierarchical: return "hierarchical";
    case Algorithm::context_cite: return "context-cite";
  }
  return "?";
}

std::vector<std::vector<size_t>> context_cite_ablations(size_t units, const ContextCiteOptions& o) {
  // Salted: ContextCite's masks differ from pizza eval's LDS masks of the same seed.
  const auto masks = ablation_masks(units, o.ablations, o.keep_prob, o.seed ^ 0x43434954455F4D53ull);
  std::vector<std::vector<size_t>> removed(masks.size());
  for (size_t a = 0; a < masks.size(); ++a)
    for (size_t u = 0; u < units; ++u)
      if (!masks[a][u]) removed[a].push_back(u);
  return removed;
}

void check_context_cite(const ContextCiteOptions& o) {
  if (o.ablations < 4 || o.ablations > 100000)
    throw UsageError("--ablations must be 4..100000 for context-cite (a fit and a held-out check), got " +
                     std::to_string(o.ablations));
  if (!(o.keep_prob > 0 && o.keep_prob < 1))
    throw UsageError("--keep-prob must be strictly between 0 and 1, got " + format_number_text(o.keep_prob));
  if (!(o.lasso_alpha >= 0) || !std::isfinite(o.lasso_alpha))
    throw UsageError("--lasso-alpha must be a finite number >= 0, got " + format_number_text(o.lasso_alpha));
}

Scoring parse_scoring(std::string_view name) {
  if (name == "teacher-forced") return Scoring::teacher_forced;
  if (name == "free-running") return Scoring::free_running;
  throw UsageError("--scoring: unknown value '" + std::string(name) + "' (expected teacher-forced or free-running)");
}

std::string_view scoring_name(Scoring s) { return s == Scoring::teacher_forced ? "teacher-forced" : "free-running"; }

std::vector<std::vector<size_t>> initial_chunks(size_t units, size_t chunk, size_t stride) {
  if (chunk == 0) throw UsageError("--init-chunk-size must be positive");
  if (stride == 0) throw UsageError("--stride must be positive");
  // Windows start half a stride before the first unit so edge units are covered as often as
  // inner ones; windows clipped to nothing are dropped.
  const auto pad = static_cast<long long>(stride / 2);
  std::vector<std::vector<size_t>> out;
  for (long long start = -pad; start < static_cast<long long>(units) + pad; start += static_cast<long long>(stride)) {
    const auto b = static_cast<size_t>(std::max(start, 0LL));
    const auto e = std::min(static_cast<size_t>(std::max(start + static_cast<long long>(chunk), 0LL)), units);
    if (b >= e) continue;
    std::vector<size_t> c(e - b);
    std::iota(c.begin(), c.end(), b);
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

double mean(std::span<const double> v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

class Runner {
 public:
  Runner(PerturbationBackend& backend, const Perturber& perturber, const EngineOptions& opts)
      : backend_(backend), perturber_(perturber), opts_(opts) {}

  EngineResult run(const std::optional<Generation>& original_output) {
    const auto t0 = std::chrono::steady_clock::now();
    if (opts_.metrics.empty()) throw UsageError("--metric: no metric given");
    r_.scoring = opts_.scoring.value_or(backend_.can_score() ? Scoring::teacher_forced : Scoring::free_running);
    if (r_.scoring == Scoring::teacher_forced) {
      if (!backend_.can_score()) throw UsageError("--scoring teacher-forced: this backend cannot score a given output");
      require_teacher_forceable(opts_.metrics);
    } else if (original_output) {
      throw UsageError("--scoring free-running explains the model's own completion; it cannot take a target text");
    }
    if (!opts_.foil.empty() && r_.scoring != Scoring::teacher_forced)
      throw UsageError("--contrast-text needs --scoring teacher-forced (the foil's log-probabilities are read, not generated)");

    const Prompt original = perturber_.original();
    if (original_output) {
      r_.original = *original_output;
    } else {
      r_.original = backend_.complete(std::span(&original, 1)).at(0);
      ++r_.model_calls;
    }
    if (r_.original.tokens.empty()) throw InputError("the model produced no output token to explain");
    if (r_.scoring == Scoring::teacher_forced) {
      // The original's log-probabilities come from the same scoring path as the perturbed
      // ones, so a perturbation that changes nothing scores exactly 0.
      if (!opts_.foil.empty() && opts_.foil.size() != r_.original.tokens.size())
        throw InputError("the foil has " + std::to_string(opts_.foil.size()) + " tokens and the explained output " +
                         std::to_string(r_.original.tokens.size()) + ": a contrastive target needs one foil token per output token");
      auto lps = score(std::span(&original, 1));
      original_lp_ = std::move(lps.output.at(0));
      if (!opts_.foil.empty()) original_foil_lp_ = std::move(lps.foil.at(0));
      ++r_.model_calls;
      for (size_t i = 0; i < original_lp_.size(); ++i) r_.original.tokens[i].logprob = original_lp_[i];
    }

    const size_t O = r_.original.tokens.size(), F = perturber_.size();
    const std::string suffix = opts_.foil.empty() ? "" : "-contrast";  // the matrices explain a margin
    if (opts_.algorithm == Algorithm::context_cite) {
      check_context_cite(opts_.context_cite);
      r_.matrices.push_back({std::string(context_cite_target()) + suffix, O, F, std::vector<double>(O * F, 0.0)});
    } else {
      for (auto m : opts_.metrics) r_.matrices.push_back({std::string(metric_name(m)) + suffix, O, F, std::vector<double>(O * F, 0.0)});
    }

    if (opts_.algorithm == Algorithm::occlusion) occlusion();
    else if (opts_.algorithm == Algorithm::hierarchical) hierarchical();
    else context_cite();

    r_.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    r_.experiment_log = log_json(original);
    return std::move(r_);
  }

 private:
  // Teacher-forced log-probabilities per prompt: of the output tokens, and of the foil's
  // (contrastive runs; else empty).
  struct Scored {
    std::vector<std::vector<double>> output, foil;
  };
  Scored score(std::span<const Prompt> prompts) {
    Scored s;
    if (opts_.foil.empty()) {
      s.output = backend_.score(prompts, r_.original);
      return s;
    }
    for (auto& c : backend_.score_contrast(prompts, r_.original, opts_.foil)) {
      s.output.push_back(std::move(c.output));
      s.foil.push_back(std::move(c.foil));
    }
    return s;
  }

  // Evaluates one batch of perturbations (one backend call), appending to the evaluations.
  std::span<const Evaluation> evaluate(const std::vector<std::vector<size_t>>& masks, int depth) {
    std::vector<Prompt> prompts;
    for (const auto& m : masks) prompts.push_back(perturber_.perturb(m));
    const size_t first = r_.evaluations.size();
    Scored lps;
    std::vector<Generation> gens;
    if (r_.scoring == Scoring::teacher_forced) lps = score(prompts);
    else gens = backend_.complete(prompts);
    r_.model_calls += prompts.size();
    FreeRunningContext ctx{opts_.ignore_output_location, opts_.embeddings, opts_.shared_vocab};
    for (size_t k = 0; k < masks.size(); ++k) {
      Evaluation e;
      e.units = masks[k];
      e.depth = depth;
      e.prompt = std::move(prompts[k]);
      e.output_text = r_.scoring == Scoring::teacher_forced ? r_.original.text : gens[k].text;
      if (r_.scoring == Scoring::teacher_forced) {
        e.logprobs = std::move(lps.output.at(k));
        if (!opts_.foil.empty()) e.foil_logprobs = std::move(lps.foil.at(k));
      }
      for (auto m : opts_.metrics)
        e.scores.push_back(r_.scoring == Scoring::teacher_forced
                               ? teacher_forced_scores(m, original_lp_, e.logprobs, original_foil_lp_, e.foil_logprobs)
                               : free_running_scores(m, r_.original, gens.at(k), ctx));
      r_.evaluations.push_back(std::move(e));
    }
    if (opts_.progress) opts_.progress(r_.evaluations.size(), r_.evaluations.size());
    return std::span(r_.evaluations).subspan(first);
  }

  void occlusion() {
    std::vector<std::vector<size_t>> masks;
    for (size_t u = 0; u < perturber_.size(); ++u) masks.push_back({u});
    const auto evals = evaluate(masks, 0);
    for (size_t k = 0; k < evals.size(); ++k)
      for (size_t m = 0; m < r_.matrices.size(); ++m)
        for (size_t o = 0; o < r_.matrices[m].rows; ++o) r_.matrices[m].at(o, evals[k].units[0]) = evals[k].scores[m][o];
    r_.cumulative = column_totals(r_.matrices[0]);
  }

  void hierarchical() {
    const size_t F = perturber_.size(), O = r_.original.tokens.size();
    const auto& h = opts_.hierarchical;
    const size_t chunk = h.init_chunk_size.value_or(std::max<size_t>(2, F / 2));
    const size_t stride = h.stride.value_or(std::max<size_t>(1, chunk / 2));
    auto masks = initial_chunks(F, chunk, stride);
    r_.cumulative.assign(F, 0.0);
    for (int depth = 0; !masks.empty(); ++depth) {
      r_.chunks_by_depth.push_back(masks);
      const auto evals = evaluate(masks, depth);
      // Per metric: each unit's score this stage is the mean, over the chunks holding it, of
      // the chunk's score divided by the chunk's size (PIZZA's normalisation).
      std::vector<double> primary_unit;
      for (size_t m = 0; m < r_.matrices.size(); ++m) {
        std::vector<double> sum(O * F, 0.0);
        std::vector<size_t> count(F, 0);
        for (const auto& e : evals)
          for (auto u : e.units) {
            ++count[u];
            for (size_t o = 0; o < O; ++o) sum[o * F + u] += e.scores[m][o] / static_cast<double>(e.units.size());
          }
        for (size_t u = 0; u < F; ++u) {
          double unit = 0;
          for (size_t o = 0; o < O; ++o) {
            if (count[u]) sum[o * F + u] /= static_cast<double>(count[u]);
            unit += sum[o * F + u];
          }
          unit /= static_cast<double>(O);
          // PIZZA accumulates |unit score| per stage; rows accumulate the per-token scores
          // with that stage's sign, so each column's mean over rows is PIZZA's cumulative.
          const double sign = unit > 0 ? 1.0 : unit < 0 ? -1.0 : 0.0;
          for (size_t o = 0; o < O; ++o) r_.matrices[m].at(o, u) += sign * sum[o * F + u];
          if (m == 0) primary_unit.push_back(unit);
        }
      }
      for (size_t u = 0; u < F; ++u) r_.cumulative[u] += std::fabs(primary_unit[u]);

      const auto [lo, hi] = std::minmax_element(r_.cumulative.begin(), r_.cumulative.end());
      if (*hi <= kMinMaximumThreshold) break;
      if (h.max_depth && depth >= *h.max_depth) break;
      const double midrange = (*hi + *lo) / 2;
      std::vector<std::vector<size_t>> next;
      for (const auto& e : evals) {
        double cum = 0;
        for (auto u : e.units) cum += r_.cumulative[u];
        cum /= static_cast<double>(e.units.size());
        const bool over_static = h.static_threshold && std::fabs(mean(e.scores[0])) > *h.static_threshold;
        if ((cum >= midrange || over_static) && e.units.size() > 1) {
          const auto half = static_cast<std::ptrdiff_t>(e.units.size() / 2);
          next.emplace_back(e.units.begin(), e.units.begin() + half);
          next.emplace_back(e.units.begin() + half, e.units.end());
        }
      }
      // Overlapping windows can split into the same halves: evaluate each chunk once.
      std::sort(next.begin(), next.end());
      next.erase(std::unique(next.begin(), next.end()), next.end());
      masks = std::move(next);
    }
  }

  // The matrix's name: what the surrogate's weights predict.
  std::string_view context_cite_target() const {
    return r_.scoring == Scoring::teacher_forced ? "surrogate-logit" : "surrogate-prob";
  }

  // What ContextCite regresses for output token o, teacher-forced: the logit of its probability,
  // or with a foil the log-odds of the token against the foil, log p(y) - log p(foil).
  double forced_target(const Evaluation& e, size_t o) const {
    return opts_.foil.empty() ? logit_of_logprob(e.logprobs[o]) : e.logprobs[o] - e.foil_logprobs[o];
  }

  // ContextCite: score the ablations (one batch), then fit one surrogate per output token and
  // one for the whole output on the first 90% and check each on the held-out rest.
  void context_cite() {
    const auto& cc = opts_.context_cite;
    const size_t F = perturber_.size(), O = r_.original.tokens.size(), n = cc.ablations;
    const auto removed = context_cite_ablations(F, cc);
    const auto evals = evaluate(removed, 0);
    std::vector<std::vector<bool>> masks(n, std::vector<bool>(F, true));
    for (size_t a = 0; a < n; ++a)
      for (auto u : removed[a]) masks[a][u] = false;
    const size_t held = std::max<size_t>(1, (n + 9) / 10), train = n - held;
    std::vector<double> X(train * F);
    for (size_t a = 0; a < train; ++a)
      for (size_t u = 0; u < F; ++u) X[a * F + u] = masks[a][u] ? 1.0 : 0.0;
    auto fit = [&](const std::vector<double>& y) {
      const auto lf = lasso(X, train, F, std::span(y).first(train), cc.lasso_alpha);
      SurrogateFit s{lf.weights, lf.intercept, 0};
      std::vector<double> predicted, actual;
      for (size_t a = train; a < n; ++a) {
        double v = lf.intercept;
        for (size_t u = 0; u < F; ++u) v += masks[a][u] ? lf.weights[u] : 0.0;
        predicted.push_back(v);
        actual.push_back(y[a]);
      }
      s.held_out_spearman = spearman(predicted, actual);
      return s;
    };
    const bool forced = r_.scoring == Scoring::teacher_forced;
    for (size_t o = 0; o < O; ++o) {
      std::vector<double> y(n);
      for (size_t a = 0; a < n; ++a) y[a] = forced ? forced_target(evals[a], o) : -evals[a].scores[0][o];
      auto f = fit(y);
      for (size_t u = 0; u < F; ++u) r_.matrices[0].at(o, u) = f.weights[u];
      r_.row_fits.push_back(std::move(f));
    }
    if (forced) {
      std::vector<double> y(n);
      for (size_t a = 0; a < n; ++a) {
        if (opts_.foil.empty()) {
          double lp = 0;
          for (double v : evals[a].logprobs) lp += v;
          y[a] = logit_of_logprob(lp);
        } else {
          // The whole output against the whole foil: log p(y) - log p(foil), each position's
          // foil read in the output's context.
          y[a] = 0;
          for (size_t o = 0; o < O; ++o) y[a] += forced_target(evals[a], o);
        }
      }
      r_.sequence_fit = fit(y);
    }
    r_.cumulative = column_totals(r_.matrices[0]);
  }

  std::string log_json(const Prompt& original) const {
    JsonWriter w;
    w.begin_object();
    w.field("backend", backend_.describe());
    w.field("algorithm", algorithm_name(opts_.algorithm));
    w.field("scoring", scoring_name(r_.scoring));
    w.field("strategy", strategy_name(perturber_.spec().kind));
    w.key("metrics").begin_array();
    for (auto m : opts_.metrics) w.value(metric_name(m));
    w.end_array();
    w.field("original_input", original.text);
    w.field("original_output", r_.original.text);
    if (!opts_.foil.empty()) {
      w.key("foil_ids").begin_array();
      for (auto id : opts_.foil) w.value(static_cast<int64_t>(id));
      w.end_array();
    }
    w.key("perturbations").begin_array();
    for (const auto& e : r_.evaluations) {
      w.begin_object();
      w.field("depth", e.depth);
      w.key("masked_units").begin_array();
      for (auto u : e.units) w.value(u);
      w.end_array();
      w.field("masked_text", perturber_.masked_text(e.units));
      w.field("perturbed_input", e.prompt.text);
      w.field("perturbed_output", e.output_text);
      w.key("scores").begin_object();
      for (size_t m = 0; m < opts_.metrics.size(); ++m) {
        w.key(metric_name(opts_.metrics[m])).begin_array();
        for (double v : e.scores[m]) w.number_or_null(v);
        w.end_array();
      }
      w.end_object();
      w.end_object();
    }
    w.end_array();
    w.key("cumulative").begin_array();
    for (double v : r_.cumulative) w.number_or_null(v);
    w.end_array();
    w.field("num_llm_calls", r_.model_calls);
    w.field("duration_ms", r_.duration_ms);
    w.end_object();
    return w.take();
  }

  PerturbationBackend& backend_;
  const Perturber& perturber_;
  const EngineOptions& opts_;
  EngineResult r_;
  std::vector<double> original_lp_, original_foil_lp_;  // the latter: contrastive runs
};

}  // namespace

EngineResult run_engine(PerturbationBackend& backend, const Perturber& perturber, const EngineOptions& opts,
                        const std::optional<Generation>& original_output) {
  return Runner(backend, perturber, opts).run(original_output);
}

void apply_engine_result(EngineResult& er, const EngineOptions& opts, AttributionResult& r) {
  r.method = std::string(algorithm_name(opts.algorithm));
  r.target = er.matrices.at(0).name;  // the first metric's (or the surrogate's)
  r.matrices = std::move(er.matrices);
  r.timings.attribute_ms = er.duration_ms;
  if (opts.algorithm == Algorithm::context_cite) {
    std::vector<double> spearman;
    for (const auto& f : er.row_fits) spearman.push_back(f.held_out_spearman);
    r.row_stats.emplace_back("held_out_spearman", std::move(spearman));
    const auto& cc = opts.context_cite;
    JsonWriter w;
    w.begin_object().field("ablations", cc.ablations).field("keep_prob", cc.keep_prob);
    w.field("seed", static_cast<int64_t>(cc.seed)).field("lasso_alpha", cc.lasso_alpha);
    w.field("held_out", (cc.ablations + 9) / 10);
    if (er.sequence_fit) {
      w.key("sequence").begin_object().key("weights").begin_array();
      for (double v : er.sequence_fit->weights) w.value(v);
      w.end_array().field("intercept", er.sequence_fit->intercept);
      w.field("held_out_spearman", er.sequence_fit->held_out_spearman).end_object();
    }
    w.end_object();
    r.extra_json.emplace_back("context_cite", w.take());
  }
}

std::string metrics_json(const std::vector<Metric>& metrics) {
  JsonWriter w;
  w.begin_array();
  for (auto m : metrics) w.value(metric_name(m));
  w.end_array();
  return w.take();
}

}  // namespace pizza::perturbation
