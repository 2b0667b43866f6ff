// `pizza eval`: how faithful is each attribution method? Runs methods on prompts (or reads saved
// results) and scores them with deletion, insertion, ABPC, top-k drop and LDS.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "batch/records.h"
#include "diff/diff.h"
#include "engine/local_eval.h"
#include "eval/report.h"
#include "util/error.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/split.h"

namespace pizza::app {

namespace {

struct Options {
  ModelOptions model;
  std::string prompt, prompts, target_text;
  std::vector<std::string> results;
  int64_t max_new_tokens = 16, max_batch = 16;
  std::string methods, metrics = "deletion,insertion,abpc,topk,lds", k = "1,3,5", level = "sequence";
  size_t ablations = 64;
  double keep_prob = 0.5;
  uint64_t seed = 0;
  std::string unit = "token", spans, unit_regex, strategy = "delete", replacement;
  int64_t nth = 1;
  // Method options, as in `pizza local`.
  std::string target, norm = "l1", baseline = "pad", aggregate = "sum";
  int ig_steps = 32;
  bool abs = false;
  std::string format, output, color = "auto";
  bool quiet = false;
};

std::vector<size_t> parse_k(const std::string& text) {
  std::vector<size_t> out;
  for (auto part : split(text, ',')) {
    const auto t = trim(part);
    size_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || v == 0)
      throw UsageError("--k: '" + std::string(t) + "' is not a positive integer");
    out.push_back(v);
  }
  return out;
}

// Everything checked before the model loads.
LocalEvalRequest make_request(const Options& o) {
  LocalEvalRequest req;
  req.methods.clear();
  if (o.methods.empty()) {
    req.methods = o.results.empty() ? default_eval_methods() : std::vector<std::string>{"random"};
  } else {
    for (auto m : split(o.methods, ',')) req.methods.emplace_back(trim(m));
  }
  if (o.results.empty()) check_eval_methods(req.methods);
  else
    for (const auto& m : req.methods)
      if (m != "random") throw UsageError("--methods with --results: only 'random' can be added, got '" + m + "'");
  req.options.metrics = eval::parse_metrics(o.metrics);
  req.options.k = parse_k(o.k);
  req.options.ablations = o.ablations;
  req.options.keep_prob = o.keep_prob;
  req.options.level = eval::parse_level(o.level);
  req.options.seed = o.seed;
  eval::check_options(req.options);
  if (o.ablations > 100000) throw UsageError("--ablations: at most 100000, got " + std::to_string(o.ablations));

  req.unit = parse_unit_options(o.unit, o.spans, o.unit_regex);
  req.strategy.kind = perturbation::parse_strategy(o.strategy);
  req.strategy.replacement = o.replacement;
  req.strategy.n = o.nth;
  if (req.strategy.kind == perturbation::Strategy::fixed && o.replacement.empty())
    throw UsageError("--strategy fixed needs --replacement TEXT");
  if (o.max_batch <= 0) throw UsageError("--max-batch must be positive, got " + std::to_string(o.max_batch));
  req.max_batch = o.max_batch;

  auto& g = req.gradient;
  g.target = o.target;
  g.method_options.norm = o.norm;
  g.method_options.abs = o.abs;
  g.method_options.ig_steps = o.ig_steps;
  g.method_options.baseline = o.baseline == "pad" ? Baseline::pad : Baseline::zero;
  g.max_batch = o.max_batch;
  g.aggregate = parse_aggregate(o.aggregate);
  if (!g.target.empty()) find_target(g.target);
  req.perturbation.backend.max_batch = o.max_batch;
  return req;
}

struct PromptInput {
  std::string id, prompt;
  std::optional<std::string> target_text;
};

std::vector<PromptInput> read_prompts(const Options& o) {
  std::vector<PromptInput> out;
  if (!o.prompt.empty()) {
    PromptInput p{"1", read_prompt(o.prompt), std::nullopt};
    if (!o.target_text.empty()) p.target_text = o.target_text;
    out.push_back(std::move(p));
    return out;
  }
  for (auto& r : batch::load_prompts(o.prompts)) {
    if (!r.overrides.empty())
      throw InputError(o.prompts + ": line " + std::to_string(r.line) + ": key \"" + r.overrides.front().first +
                       "\" (pizza eval reads id, prompt and target_text; options apply to the whole run)");
    PromptInput p{r.id, std::move(r.prompt), std::move(r.target_text)};
    if (!p.target_text && !o.target_text.empty()) p.target_text = o.target_text;
    out.push_back(std::move(p));
  }
  if (out.empty()) throw InputError(o.prompts + ": no prompt in the file");
  return out;
}

void run(const Options& o) {
  const auto req_template = make_request(o);
  const auto format = output_format(o.format, o.output).value_or(report::Format::table);

  // Inputs first (a broken file fails before the model load).
  std::vector<PromptInput> prompts;
  std::vector<diff::ResultsFile> files;
  std::vector<std::vector<SavedAttribution>> groups;
  if (o.results.empty()) {
    prompts = read_prompts(o);
  } else {
    for (const auto& f : o.results) files.push_back(diff::load_results(f));
    groups = group_saved_results(files);
    if (groups.empty()) throw InputError("--results: no successful attribution record in the files");
  }

  const auto t_start = std::chrono::steady_clock::now();
  const auto lm = load_model(o.model);
  eval::EvalReport report;
  report.tool_version = PIZZA_VERSION;
  report.model = o.model.model;
  report.engine = "local";
  report.unit = o.results.empty() ? std::string(unit_kind_name(req_template.unit.kind)) : "from results";
  report.strategy = std::string(perturbation::strategy_name(req_template.strategy.kind));
  report.options = req_template.options;
  report.run = run_info(*lm);
  report.parameters = {{"max_new_tokens", std::to_string(o.max_new_tokens)},
                       {"max_batch", std::to_string(o.max_batch)},
                       {"target", "\"" + (o.target.empty() ? std::string("default") : o.target) + "\""},
                       {"ig_steps", std::to_string(o.ig_steps)}};

  const size_t n = o.results.empty() ? prompts.size() : groups.size();
  if (o.results.empty()) {
    report.methods = req_template.methods;
  } else {
    for (const auto& g : groups)
      for (const auto& s : g)
        if (std::find(report.methods.begin(), report.methods.end(), s.label) == report.methods.end())
          report.methods.push_back(s.label);
    if (std::find(req_template.methods.begin(), req_template.methods.end(), "random") != req_template.methods.end())
      report.methods.push_back("random");
  }

  ProgressBar bar("evaluating", !o.quiet);
  size_t failed = 0;
  for (size_t i = 0; i < n; ++i) {
    LocalEvalRequest req = req_template;
    req.progress = [&bar, i, n](size_t done, size_t steps) { bar.update(i * steps + done, n * steps); };
    eval::PromptRecord rec;
    const std::string id = o.results.empty() ? prompts[i].id : std::to_string(i + 1);
    try {
      rec = o.results.empty()
                ? evaluate_local(*lm, req, prompts[i].prompt, prompts[i].target_text, o.max_new_tokens, i)
                : evaluate_saved(*lm, req, groups[i], i);
    } catch (const InputError& e) {
      if (n == 1) throw;
      // One bad prompt fails alone; the others are still evaluated (exit status 1 at the end).
      rec = {};
      rec.prompt = o.results.empty() ? prompts[i].prompt : groups[i].front().record->prompt;
      rec.error = e.what();
      ++failed;
    }
    rec.id = id;
    report.prompts.push_back(std::move(rec));
  }
  bar.finish();
  report.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();

  const auto mode = o.color == "always" ? report::ColorMode::always
                    : o.color == "never" ? report::ColorMode::never
                                         : report::ColorMode::auto_;
  auto ropt = report::detect_render_options(mode);
  if (!o.output.empty()) ropt.stdout_is_tty = false;
  const std::string text = eval::render(report, format, report::use_color(ropt));
  if (o.output.empty()) {
    std::cout << text << std::flush;
  } else {
    write_file_atomic(o.output, text);
  }
  if (failed) throw InputError(std::to_string(failed) + " of " + std::to_string(n) + " prompts failed (their errors are in the output)");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("eval", "Measure how faithful attribution methods are (deletion, insertion, ABPC, top-k, LDS)");
  add_model_options(cmd, o->model);
  auto* prompt = cmd->add_option("--prompt,-p", o->prompt, "Prompt text ('-' reads standard input)");
  auto* prompts = cmd->add_option("--prompts", o->prompts, "Prompt file: .txt (one per line) or .jsonl ({id, prompt, target_text})");
  auto* results = cmd->add_option("--results", o->results, "Evaluate attributions written earlier by pizza local/api (JSON or JSONL)");
  prompt->excludes(prompts)->excludes(results);
  prompts->excludes(results);
  cmd->add_option("--max-new-tokens,-n", o->max_new_tokens, "Tokens to generate greedily (the explained output)")
      ->capture_default_str();
  cmd->add_option("--target-text", o->target_text, "Explain this continuation instead of generating (teacher forcing)");
  cmd->add_option("--methods", o->methods,
                  "Comma-separated methods (default: saliency, input-x-gradient, integrated-gradients, attnlrp, cp-lrp, occlusion, "
                  "hierarchical, random; with --results: the files' methods + random)");
  cmd->add_option("--metrics", o->metrics, "deletion, insertion, abpc, topk, lds (comma-separated)")->capture_default_str();
  cmd->add_option("--k", o->k, "Top-k drop: values of k (comma-separated; k above the unit count removes every unit)")
      ->capture_default_str();
  cmd->add_option("--ablations", o->ablations, "LDS: random masks per prompt")->capture_default_str();
  cmd->add_option("--keep-prob", o->keep_prob, "LDS: probability that a mask keeps a unit")->capture_default_str();
  cmd->add_option("--level", o->level, "sequence (rank by column sums) or token (rank each output token's row)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the LDS masks and the random baseline")->capture_default_str();
  cmd->add_option("--unit", o->unit, "Input units: token, word or sentence")->capture_default_str();
  cmd->add_option("--spans", o->spans, "Custom units as byte spans of the prompt: a:b,c:d");
  cmd->add_option("--unit-regex", o->unit_regex, "Custom units: each regex match is a unit");
  cmd->add_option("--strategy", o->strategy, "How a unit is removed: delete, fixed, nth-nearest or pad")->capture_default_str();
  cmd->add_option("--replacement", o->replacement, "Replacement text of --strategy fixed");
  cmd->add_option("--n", o->nth, "--strategy nth-nearest: rank of the replacement")->capture_default_str();
  cmd->add_option("--target", o->target,
                  "Gradient methods: prob, logprob, logit or pizza-legacy (default: each method's own, prob; logit for "
                  "attnlrp and cp-lrp)");
  cmd->add_option("--norm", o->norm, "Saliency norm: l1 or l2")->check(CLI::IsMember({"l1", "l2"}))->capture_default_str();
  cmd->add_flag("--abs", o->abs, "Magnitudes of signed methods");
  cmd->add_option("--ig-steps", o->ig_steps, "Integrated-gradients steps")->capture_default_str();
  cmd->add_option("--ig-baseline", o->baseline, "Integrated-gradients baseline: zero or pad")
      ->check(CLI::IsMember({"zero", "pad"}))->capture_default_str();
  cmd->add_option("--aggregate", o->aggregate, "Token scores into units: sum, mean, max or absmax")->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Rows per backward pass; perturbed prompts per forward pass")
      ->capture_default_str();
  add_output_options(cmd, o->format, o->output, o->color, o->quiet);
  cmd->callback([o] {
    if (o->prompt.empty() && o->prompts.empty() && o->results.empty())
      throw UsageError("pizza eval needs --prompt, --prompts or --results");
    run(*o);
  });
}

}  // namespace pizza::app
