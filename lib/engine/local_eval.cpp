#include "engine/local_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "attribution/method.h"
#include "engine/local_backend.h"
#include "eval/backend_eval.h"
#include "util/error.h"
#include "util/memory.h"

namespace pizza {

namespace {

using perturbation::Perturber;
using perturbation::PromptUnits;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The rows x units matrix of `r` restricted to the prompt units of `pu` (matched by byte span;
// special and earlier-output columns are not prompt units).
std::vector<double> unit_matrix(const std::vector<InputUnit>& inputs, const ScoreMatrix& m, const PromptUnits& pu,
                                const std::string& who) {
  const size_t U = pu.units.size();
  std::vector<double> out(m.rows * U, 0.0);
  for (size_t u = 0; u < U; ++u) {
    const auto span = pu.units[u].span;
    size_t col = inputs.size();
    for (size_t c = 0; c < inputs.size(); ++c)
      if (!inputs[c].special && !inputs[c].generated && inputs[c].begin == span.first && inputs[c].end == span.second)
        col = c;
    if (col == inputs.size())
      throw InputError(who + ": no column for the unit at bytes " + std::to_string(span.first) + ".." +
                       std::to_string(span.second) + " of the prompt");
    for (size_t r = 0; r < m.rows; ++r) out[r * U + u] = m.at(r, col);
  }
  return out;
}

// The local backend's teacher-forced scores of removed-unit sets, as lib/eval asks for them.
eval::ScoreFn local_scorer(LocalBackend& backend, const Perturber& perturber, const perturbation::Generation& output) {
  return [&backend, &perturber, &output](const std::vector<std::vector<size_t>>& sets) {
    std::vector<perturbation::Prompt> prompts;
    prompts.reserve(sets.size());
    for (const auto& s : sets) prompts.push_back(perturber.perturb(s));
    return backend.score(prompts, output);
  };
}

// Everything a prompt's scoring needs, built once per prompt.
struct Scoring {
  PromptUnits units;
  EmbeddingChoice embeddings;
  std::unique_ptr<Perturber> perturber;
  std::unique_ptr<LocalBackend> backend;
  perturbation::Generation output;
};

std::unique_ptr<Scoring> make_scoring(const LanguageModel& lm, const LocalEvalRequest& req, const TokenizedRun& run,
                                      const std::string& prompt, const UnitSpec& unit) {
  const auto& tok = lm.tokenizer();
  auto s = std::make_unique<Scoring>();
  s->units = perturbation::make_units(prompt, run.prompt.tokens, unit);
  s->embeddings = choose_embeddings(lm, &tok, req.strategy, {}, lm.config().vocab_size);
  std::optional<int32_t> pad = tok.pad_id();
  if (!pad) pad = tok.unk_id();
  s->perturber = std::make_unique<Perturber>(s->units, req.strategy, &tok, s->embeddings.table.get(),
                                             s->embeddings.shared_vocab, pad);
  LocalBackendOptions bo;
  bo.max_batch = req.max_batch;
  bo.max_memory = memory_budget(lm, req.gradient.max_memory);
  bo.resident_bytes = std::max(weight_bytes(lm.model()), current_rss_bytes());
  s->backend = std::make_unique<LocalBackend>(lm, run.prompt_ids, bo);
  s->output = forced_output(tok, run.prompt_ids, run.output_ids);
  return s;
}



}  // namespace

std::vector<std::string> default_eval_methods() {
  std::vector<std::string> out;
  for (const auto& m : gradient_methods()) out.push_back(m.name);
  out.push_back("occlusion");
  out.push_back("hierarchical");
  out.push_back("context-cite");
  out.push_back("random");
  return out;
}

void check_eval_methods(const std::vector<std::string>& methods) {
  if (methods.empty()) throw UsageError("--methods: no method given");
  const auto known = default_eval_methods();
  for (const auto& m : methods) {
    if (std::find(known.begin(), known.end(), m) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw UsageError("--methods: unknown method '" + m + "' (expected " + list + ")");
  }
  for (size_t i = 0; i < methods.size(); ++i)
    if (std::find(methods.begin(), methods.begin() + static_cast<std::ptrdiff_t>(i), methods[i]) !=
        methods.begin() + static_cast<std::ptrdiff_t>(i))
      throw UsageError("--methods: '" + methods[i] + "' is listed twice");
}

eval::PromptRecord evaluate_local(const LanguageModel& lm, const LocalEvalRequest& req, const std::string& prompt,
                                  const std::optional<std::string>& target_text, int64_t max_new_tokens,
                                  uint64_t prompt_seed) {
  const auto run = prepare_run(lm, prompt, target_text, max_new_tokens);
  auto scoring = make_scoring(lm, req, run, prompt, req.unit);
  const size_t R = run.output_ids.size(), U = scoring->units.units.size();
  if (U == 0) throw InputError("the prompt has no unit that can be removed");
  const size_t steps = req.methods.size() + 1;

  std::vector<eval::MethodScores> methods;
  for (const auto& name : req.methods) {
    eval::MethodScores ms;
    if (name == "random") {
      ms = eval::random_scores(R, U, eval::kRandomDraws, eval::random_seed(req.options.seed, prompt_seed));
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      AttributionResult r;
      if (perturbation::find_algorithm(name)) {
        LocalPerturbationRequest p = req.perturbation;
        p.prompt = prompt;
        p.output_ids = run.output_ids;
        p.engine.algorithm = perturbation::parse_algorithm(name);
        p.engine.scoring = perturbation::Scoring::teacher_forced;
        // ContextCite keeps its own defaults (eval's --ablations/--keep-prob are LDS's) and draws
        // other masks than LDS (a salted seed).
        p.engine.context_cite.seed = req.options.seed + prompt_seed;
        p.strategy = req.strategy;
        p.unit = req.unit;
        r = run_local_perturbation(lm, p);
        for (const auto& [k, v] : r.parameters)
          if (k == "model_calls") ms.model_calls = static_cast<size_t>(std::stoull(v));
      } else {
        LocalRequest g = req.gradient;
        g.prompt = prompt;
        g.output_ids = run.output_ids;
        g.method = name;
        g.unit = req.unit;
        g.skip_special = false;
        g.normalize = Normalize::none;
        r = run_local_gradient(lm, g);
        // One forward and one backward pass per output token and gradient point.
        ms.model_calls = R * find_gradient_method(name)->points(g.method_options).size();
      }
      ms.time_ms = ms_since(t0);
      ms.method = name;
      ms.rows = R;
      ms.units = U;
      ms.draws.push_back(unit_matrix(r.inputs, r.matrix(), scoring->units, name));
    }
    methods.push_back(std::move(ms));
    if (req.progress) req.progress(methods.size(), steps);
  }

  auto rec = eval::describe_prompt(scoring->units, scoring->output);
  const auto t0 = std::chrono::steady_clock::now();
  rec.eval = eval::evaluate_prompt(methods, req.options, local_scorer(*scoring->backend, *scoring->perturber, scoring->output),
                                   prompt_seed);
  rec.score_ms = ms_since(t0);
  if (req.progress) req.progress(steps, steps);
  return rec;
}

std::vector<std::vector<SavedAttribution>> group_saved_results(const std::vector<diff::ResultsFile>& files) {
  // Labels: the method, qualified by the file name when two files hold the same method.
  std::map<std::string, std::vector<size_t>> files_of_method;
  for (size_t f = 0; f < files.size(); ++f)
    for (const auto& rec : files[f].records) {
      auto& v = files_of_method[rec.result.method];
      if (std::find(v.begin(), v.end(), f) == v.end()) v.push_back(f);
    }
  std::vector<std::string> prompts;
  std::vector<std::vector<SavedAttribution>> groups;
  for (size_t f = 0; f < files.size(); ++f) {
    for (const auto& rec : files[f].records) {
      if (rec.error) continue;  // a failed batch record: nothing to evaluate
      if (rec.result.method.empty()) throw InputError(files[f].name + ": a record has no \"method\"");
      std::string label = rec.result.method;
      if (files_of_method[rec.result.method].size() > 1)
        label += " (" + std::filesystem::path(files[f].name).filename().string() + ")";
      const auto it = std::find(prompts.begin(), prompts.end(), rec.result.text);
      const size_t g = static_cast<size_t>(it - prompts.begin());
      if (it == prompts.end()) {
        prompts.push_back(rec.result.text);
        groups.emplace_back();
      }
      for (const auto& s : groups[g])
        if (s.label == label)
          throw InputError(files[f].name + ": two " + label + " results for the prompt \"" + rec.result.text.substr(0, 40) + "\"");
      groups[g].push_back({label, &rec});
    }
  }
  return groups;
}

eval::PromptRecord evaluate_saved(const LanguageModel& lm, const LocalEvalRequest& req,
                                  const std::vector<SavedAttribution>& saved, uint64_t prompt_seed) {
  if (saved.empty()) throw InputError("no saved attribution to evaluate");
  const auto& tok = lm.tokenizer();
  const diff::Record& first = *saved.front().record;
  const std::string& prompt = first.result.text;
  const std::string who = saved.front().label;

  // The explained output: the file's token ids when it has them (checked against the model's
  // vocabulary), else its text tokenized as `pizza local --target-text` would.
  std::optional<std::vector<int64_t>> ids;
  bool all_ids = !first.result.outputs.empty();
  for (const auto& t : first.result.outputs) all_ids = all_ids && t.id >= 0;
  if (all_ids) {
    ids.emplace();
    for (const auto& t : first.result.outputs) {
      if (t.id >= tok.vocab_size() || (!tok.is_special(t.id) && tok.token_bytes(t.id) != t.text))
        throw InputError(who + ": output token " + std::to_string(t.id) + " '" + t.text +
                         "' is not that token of this model's tokenizer (the results were made with another model)");
      ids->push_back(t.id);
    }
  }
  const auto run = prepare_run(lm, prompt, first.result.output_text, 1, ids);
  const size_t R = run.output_ids.size();

  // Units: the file's non-special, non-output columns, by byte span.
  UnitSpec unit;
  unit.kind = UnitKind::spans;
  for (const auto& u : first.result.inputs)
    if (!u.special && !u.generated) unit.spans.emplace_back(u.begin, u.end);
  if (unit.spans.empty()) throw InputError(who + ": the result has no prompt unit to evaluate");
  auto scoring = make_scoring(lm, req, run, prompt, unit);
  const size_t U = scoring->units.units.size();

  std::vector<eval::MethodScores> methods;
  for (const auto& s : saved) {
    const diff::Record& rec = *s.record;
    if (rec.result.output_text != first.result.output_text)
      throw InputError(s.label + ": explains another output than " + who + " for the same prompt");
    eval::MethodScores ms;
    ms.method = s.label;
    ms.rows = R;
    ms.units = U;
    const ScoreMatrix& m = rec.result.matrices.at(0);
    auto matrix = unit_matrix(rec.result.inputs, m, scoring->units, s.label);
    if (m.rows != R) {
      // Another tokenization of the output (a server's tokens): only the sequence level, which
      // needs each unit's total, can be scored; spread the totals over the model's rows.
      if (req.options.level == eval::Level::token)
        throw InputError(s.label + ": " + std::to_string(m.rows) + " output tokens, the model has " + std::to_string(R) +
                         " for that text: --level token needs the same tokens (use --level sequence)");
      std::vector<double> spread(R * U, 0.0);
      for (size_t r = 0; r < m.rows; ++r)
        for (size_t u = 0; u < U; ++u) spread[u] += matrix[r * U + u];  // row 0 holds the totals
      matrix = std::move(spread);
    }
    ms.draws.push_back(std::move(matrix));
    methods.push_back(std::move(ms));
  }
  if (std::find(req.methods.begin(), req.methods.end(), "random") != req.methods.end())
    methods.push_back(eval::random_scores(R, U, eval::kRandomDraws, eval::random_seed(req.options.seed, prompt_seed)));

  auto rec = eval::describe_prompt(scoring->units, scoring->output);
  const auto t0 = std::chrono::steady_clock::now();
  rec.eval = eval::evaluate_prompt(methods, req.options, local_scorer(*scoring->backend, *scoring->perturber, scoring->output),
                                   prompt_seed);
  rec.score_ms = ms_since(t0);
  return rec;
}

}  // namespace pizza
