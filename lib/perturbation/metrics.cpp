#include "perturbation/metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/error.h"
#include "util/split.h"

namespace pizza::perturbation {

namespace {

// Tokens match by id when both sides have one, else by bytes.
bool same_token(int32_t id_a, const std::string& a, int32_t id_b, const std::string& b) {
  return id_a >= 0 && id_b >= 0 ? id_a == id_b : a == b;
}

// The perturbed log-probability of original token i: at the same position, or (ignoring
// location, as PIZZA does by default) its highest log-probability anywhere in the output.
double perturbed_logprob(const GeneratedToken& tok, size_t i, const Generation& perturbed, bool ignore_location) {
  double best = kAbsentLogprob;
  bool found = false;
  auto scan = [&](const GeneratedToken& pos) {
    for (const auto& alt : pos.top)
      if (same_token(tok.id, tok.token, alt.id, alt.token) && (!found || alt.logprob > best)) {
        best = alt.logprob;
        found = true;
      }
  };
  if (ignore_location) {
    for (const auto& pos : perturbed.tokens) scan(pos);
  } else if (i < perturbed.tokens.size()) {
    scan(perturbed.tokens[i]);
  }
  return best;
}

// Ids of a generation's tokens in the embedding table's vocabulary.
std::vector<int32_t> embedding_ids(const Generation& g, const FreeRunningContext& ctx) {
  std::vector<int32_t> out;
  EncodeOptions eo;
  eo.add_special_tokens = false;
  for (const auto& t : g.tokens) {
    if (ctx.shared_vocab && t.id >= 0) {
      out.push_back(t.id);
    } else if (auto id = ctx.embeddings->token_with_bytes(t.token)) {
      out.push_back(*id);
    } else {
      // Text-only token: its first piece in the embedding vocabulary (-1 when it has none).
      auto ids = ctx.embeddings->tokenizer().encode(t.token, eo).ids();
      out.push_back(ids.empty() ? -1 : ids.front());
    }
  }
  return out;
}

}  // namespace

std::vector<Metric> parse_metrics(std::string_view csv) {
  std::vector<Metric> out;
  for (const auto name : split(csv, ',')) {
    Metric m;
    if (name == "prob-diff") m = Metric::prob_diff;
    else if (name == "logprob-diff") m = Metric::logprob_diff;
    else if (name == "cosine") m = Metric::cosine;
    else if (name == "token-displacement") m = Metric::token_displacement;
    else
      throw UsageError("--metric: unknown value '" + std::string(name) +
                       "' (expected prob-diff, logprob-diff, cosine or token-displacement, comma-separated)");
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

std::string_view metric_name(Metric m) {
  switch (m) {
    case Metric::prob_diff: return "prob-diff";
    case Metric::logprob_diff: return "logprob-diff";
    case Metric::cosine: return "cosine";
    case Metric::token_displacement: return "token-displacement";
  }
  return "?";
}

bool teacher_forceable(Metric m) { return m == Metric::prob_diff || m == Metric::logprob_diff; }

std::vector<double> free_running_scores(Metric m, const Generation& original, const Generation& perturbed,
                                        const FreeRunningContext& ctx) {
  const size_t n = original.tokens.size();
  std::vector<double> out(n, 0.0);
  switch (m) {
    case Metric::prob_diff:
    case Metric::logprob_diff:
      for (size_t i = 0; i < n; ++i) {
        const auto& t = original.tokens[i];
        const double lp = perturbed_logprob(t, i, perturbed, ctx.ignore_output_location);
        out[i] = m == Metric::prob_diff ? std::exp(t.logprob) - std::exp(lp) : t.logprob - lp;
      }
      return out;
    case Metric::token_displacement:
      for (size_t i = 0; i < n; ++i) {
        const auto& t = original.tokens[i];
        double rank = static_cast<double>(t.top.size());  // absent: k
        if (i < perturbed.tokens.size()) {
          const auto& top = perturbed.tokens[i].top;
          for (size_t r = 0; r < top.size(); ++r)
            if (same_token(t.id, t.token, top[r].id, top[r].token)) {
              rank = static_cast<double>(r);
              break;
            }
        }
        out[i] = rank;
      }
      return out;
    case Metric::cosine: {
      if (!ctx.embeddings) throw InputError("--metric cosine needs a token embedding table");
      // 1 - the best similarity of each original token to any perturbed output token; an
      // empty perturbed output (or a token outside the table) counts as similarity 0.
      auto a = embedding_ids(original, ctx), b = embedding_ids(perturbed, ctx);
      std::erase(b, -1);
      std::vector<int32_t> a_valid;
      for (auto id : a)
        if (id >= 0) a_valid.push_back(id);
      const auto sims = ctx.embeddings->cosine(a_valid, b);
      size_t row = 0;
      for (size_t i = 0; i < n; ++i) {
        double best = 0.0;
        if (a[i] >= 0) {
          if (!b.empty()) best = *std::max_element(sims.begin() + static_cast<std::ptrdiff_t>(row * b.size()),
                                                   sims.begin() + static_cast<std::ptrdiff_t>((row + 1) * b.size()));
          ++row;
        }
        out[i] = 1.0 - best;
      }
      return out;
    }
  }
  return out;
}

void require_teacher_forceable(std::span<const Metric> metrics) {
  for (auto m : metrics)
    if (!teacher_forceable(m)) throw UsageError("--metric " + std::string(metric_name(m)) + " needs --scoring free-running");
}

std::vector<double> teacher_forced_scores(Metric m, std::span<const double> original_lp, std::span<const double> perturbed_lp,
                                          std::span<const double> original_foil_lp, std::span<const double> perturbed_foil_lp) {
  require_teacher_forceable(std::span(&m, 1));
  const bool contrast = !original_foil_lp.empty();
  if (perturbed_lp.size() != original_lp.size() ||
      (contrast && (original_foil_lp.size() != original_lp.size() || perturbed_foil_lp.size() != original_lp.size())))
    throw std::logic_error("teacher_forced_scores: log-probability lists differ in length");
  // The explained value of one position: the token's (log-)probability, minus the foil's.
  const auto value = [&](std::span<const double> lp, std::span<const double> foil, size_t i) {
    if (m == Metric::prob_diff) return std::exp(lp[i]) - (contrast ? std::exp(foil[i]) : 0.0);
    return lp[i] - (contrast ? foil[i] : 0.0);
  };
  std::vector<double> out(original_lp.size());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = value(original_lp, original_foil_lp, i) - value(perturbed_lp, perturbed_foil_lp, i);
  return out;
}

}  // namespace pizza::perturbation
