// `pizza eval`: how faithful is each attribution method? Runs methods on prompts (or reads saved
// results) and scores them with deletion, insertion, ABPC, top-k drop and LDS.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <memory>
#include <iostream>

#include "api/backend.h"
#include "app/commands.h"
#include "app/common.h"
#include "app/engine/model_options.h"
#include "app/option_scope.h"
#include "attribution/method.h"
#include "batch/records.h"
#include "diff/diff.h"
#include "engine/local_eval.h"
#include "eval/backend_eval.h"
#include "eval/report.h"
#include "util/error.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/split.h"

namespace pizza::app {

namespace {

struct Options {
  ModelOptions model;
  ApiClientCliOptions client;  // --base-url selects the black-box mode
  std::string prompt, prompts, target_text;
  std::vector<std::string> results;
  int64_t max_new_tokens = kDefaultMaxNewTokens, max_batch = 16;
  std::string max_memory;
  std::string methods, metrics = "deletion,insertion,abpc,topk,lds", k = "1,3,5", level = "sequence";
  size_t ablations = 64;
  double keep_prob = 0.5;
  uint64_t seed = 0;
  UnitCliOptions unit;
  StrategyCliOptions strategy;
  GradientCliOptions gradient;  // method options, as in `pizza local`
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

// The run of each method, for the option scopes (app/option_scope.h).
std::vector<RunShape> run_shapes(const Options& o, const std::vector<std::string>& methods) {
  std::vector<RunShape> runs;
  for (const auto& m : methods) {
    RunShape r;
    r.method = m;
    r.gradient = std::any_of(gradient_methods().begin(), gradient_methods().end(),
                             [&](const GradientMethod& g) { return g.name == m; });
    for (const auto& name : methods) r.methods_given += (r.methods_given.empty() ? "" : ",") + name;
    for (auto metric : split(o.metrics, ',')) r.faithfulness_metrics.emplace_back(trim(metric));
    r.target_text = !o.target_text.empty();
    r.strategy = perturbation::strategy_name(perturbation::parse_strategy(o.strategy.strategy));
    r.remote = !o.client.base_url.empty();
    r.results = !o.results.empty();
    runs.push_back(std::move(r));
  }
  return runs;
}

// Everything checked before the model loads.
LocalEvalRequest make_request(const GivenOptions& given, const Options& o) {
  LocalEvalRequest req;
  req.methods.clear();
  const bool remote = !o.client.base_url.empty();
  if (o.methods.empty()) {
    req.methods = !o.results.empty() ? std::vector<std::string>{"random"}
                  : remote           ? std::vector<std::string>{"occlusion", "hierarchical", "context-cite", "random"}
                                     : default_eval_methods();
  } else {
    for (auto m : split(o.methods, ',')) req.methods.emplace_back(trim(m));
  }
  if (!o.results.empty()) {
    if (remote) throw UsageError("--results evaluates on a local model: it cannot be combined with --base-url");
    for (const auto& m : req.methods)
      if (m != "random") throw UsageError("--methods with --results: only 'random' can be added, got '" + m + "'");
  } else if (remote) {
    eval::check_backend_methods(req.methods);
    if (!o.target_text.empty())
      throw UsageError("--target-text needs a local model (over a server the explained output is its own completion)");
  } else {
    check_eval_methods(req.methods);
  }
  req.options.metrics = eval::parse_metrics(o.metrics);
  check_scopes(given, eval_scopes(), run_shapes(o, req.methods));
  req.options.k = parse_k(o.k);
  req.options.ablations = o.ablations;
  req.options.keep_prob = o.keep_prob;
  req.options.level = eval::parse_level(o.level);
  req.options.seed = o.seed;
  eval::check_options(req.options);
  if (o.ablations > 100000) throw UsageError("--ablations: at most 100000, got " + std::to_string(o.ablations));

  req.unit = parse_unit_options(o.unit);
  req.strategy = strategy_spec(o.strategy);
  if (remote && req.strategy.kind == perturbation::Strategy::nth_nearest)
    throw UsageError("--strategy nth-nearest needs a local model's embedding table (not available with --base-url)");
  if (remote) check_api_client_options(o.client);
  if (o.max_batch <= 0) throw UsageError("--max-batch must be positive, got " + std::to_string(o.max_batch));
  req.max_batch = o.max_batch;

  apply_gradient_options(o.gradient, req.gradient);
  req.gradient.max_batch = o.max_batch;
  req.perturbation.backend.max_batch = o.max_batch;
  req.gradient.max_memory = req.perturbation.max_memory = max_memory_option(o.max_memory);
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

void run(const GivenOptions& given, const Options& o) {
  const auto req_template = make_request(given, o);
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
  const bool remote = !o.client.base_url.empty();
  eval::EvalReport report;
  report.tool_version = PIZZA_VERSION;
  report.model = o.model.model;
  report.engine = remote ? "api" : "local";
  report.unit = o.results.empty() ? std::string(unit_kind_name(req_template.unit.kind)) : "from results";
  report.strategy = std::string(perturbation::strategy_name(req_template.strategy.kind));
  report.options = req_template.options;
  report.parameters = {{"max_new_tokens", std::to_string(o.max_new_tokens)},
                       {"max_batch", std::to_string(o.max_batch)},
                       {"target", "\"" + (o.gradient.target.empty() ? std::string("default") : o.gradient.target) + "\""},
                       {"ig_steps", std::to_string(o.gradient.ig_steps)}};

  // The evaluator of prompt i, by mode.
  std::function<eval::PromptRecord(size_t, const std::function<void(size_t, size_t)>&)> evaluate;
  std::unique_ptr<LanguageModel> lm;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<api::ApiClient> client;
  api::HttpBackendOptions bo;
  std::string base_url;
  if (remote) {
    // Black box: the served model's name is --model; units need no tokenizer unless --unit token.
    ModelOptions tok_source = o.model;
    tok_source.model.clear();
    tokenizer = load_tokenizer_option(tok_source);
    if (req_template.unit.kind == UnitKind::token && !tokenizer)
      throw UsageError("--unit token with --base-url needs --tokenizer FILE; use --unit word otherwise");
    auto co = api_client_options(o.client);
    base_url = co.base_url;
    client = std::make_unique<api::ApiClient>(std::move(co));
    bo.endpoint = api::Endpoint::Completions;  // teacher-forced scoring needs echoed log-probabilities
    bo.model = o.model.model;
    bo.max_tokens = o.max_new_tokens;
    bo.top_logprobs = 1;
    bo.teacher_forced = true;
    report.run = {"remote: " + base_url, "", 0, ""};
    evaluate = [&](size_t i, const std::function<void(size_t, size_t)>& progress) {
      std::vector<Token> tokens;
      if (tokenizer) tokens = tokenizer->encode(prompts[i].prompt).tokens;
      const auto units = perturbation::make_units(prompts[i].prompt, tokens, req_template.unit);
      std::optional<int32_t> pad;
      if (tokenizer) pad = tokenizer->pad_id() ? tokenizer->pad_id() : tokenizer->unk_id();
      const perturbation::Perturber perturber(units, req_template.strategy, tokenizer.get(), nullptr, false, pad);
      api::HttpBackend backend(*client, bo, base_url);
      const auto original = perturber.original();
      const auto output = backend.complete(std::span(&original, 1)).at(0);
      eval::BackendEvalRequest br;
      br.methods = req_template.methods;
      br.options = req_template.options;
      br.progress = progress;
      return eval::evaluate_backend(backend, perturber, output, br, i);
    };
  } else {
    lm = load_model(o.model);
    report.run = run_info(*lm);
    evaluate = [&](size_t i, const std::function<void(size_t, size_t)>& progress) {
      LocalEvalRequest req = req_template;
      req.progress = progress;
      return o.results.empty() ? evaluate_local(*lm, req, prompts[i].prompt, prompts[i].target_text, o.max_new_tokens, i)
                               : evaluate_saved(*lm, req, groups[i], i);
    };
  }

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
    eval::PromptRecord rec;
    const std::string id = o.results.empty() ? prompts[i].id : std::to_string(i + 1);
    try {
      rec = evaluate(i, [&bar, i, n](size_t done, size_t steps) { bar.update(i * steps + done, n * steps); });
    } catch (const InputError& e) {
      if (n == 1) throw;
      // One bad prompt fails alone; the others are still evaluated (exit status 1 at the end).
      rec = {};
      rec.prompt = o.results.empty() ? prompts[i].prompt : groups[i].front().record->result.text;
      rec.error = e.what();
      ++failed;
    }
    rec.id = id;
    report.prompts.push_back(std::move(rec));
  }
  bar.finish();
  report.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();

  auto ropt = report::detect_render_options(color_mode(o.color));
  if (!o.output.empty()) ropt.stdout_is_tty = false;
  write_output(eval::render(report, format, report::use_color(ropt)), o.output);
  if (failed) throw InputError(std::to_string(failed) + " of " + std::to_string(n) + " prompts failed (their errors are in the output)");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = add_engine_subcommand(app, "eval");
  add_model_options(cmd, o->model);
  auto* prompt = cmd->add_option("--prompt,-p", o->prompt, "Prompt text ('-' reads standard input)");
  auto* prompts = cmd->add_option("--prompts", o->prompts, "Prompt file: .txt (one per line) or .jsonl ({id, prompt, target_text})");
  auto* results = cmd->add_option("--results", o->results, "Evaluate attributions written earlier by pizza local/api (JSON or JSONL)");
  prompt->excludes(prompts)->excludes(results);
  prompts->excludes(results);
  add_max_new_tokens_option(cmd, o->max_new_tokens, "Tokens to generate greedily (the explained output)");
  cmd->add_option("--target-text", o->target_text, "Explain this continuation instead of generating (teacher forcing)");
  cmd->add_option("--methods", o->methods,
                  "Comma-separated methods (default: every gradient method, occlusion, hierarchical, context-cite, "
                  "random; with --results: the files' methods + random)");
  cmd->add_option("--metrics", o->metrics, "deletion, insertion, abpc, topk, lds (comma-separated)")->capture_default_str();
  cmd->add_option("--k", o->k, "Top-k drop: values of k (comma-separated; k above the unit count removes every unit)")
      ->capture_default_str();
  cmd->add_option("--ablations", o->ablations, "LDS: random masks per prompt")->capture_default_str();
  cmd->add_option("--keep-prob", o->keep_prob, "LDS: probability that a mask keeps a unit")->capture_default_str();
  cmd->add_option("--level", o->level, "sequence (rank by column sums) or token (rank each output token's row)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the LDS masks and the random baseline")->capture_default_str();
  add_unit_options(cmd, o->unit, "Input units: token, word or sentence");
  add_strategy_options(cmd, o->strategy);
  add_gradient_options(cmd, o->gradient);
  cmd->add_option("--max-batch", o->max_batch, "Rows per backward pass; perturbed prompts per forward pass")
      ->capture_default_str();
  add_max_memory_option(cmd, o->max_memory);
  // Black box: --base-url (and --model naming the served model) scores over an OpenAI-compatible
  // server's completions endpoint with echo.
  add_api_client_options(cmd, o->client);
  add_output_options(cmd, o->format, o->output, o->color, o->quiet);
  cmd->callback([o, cmd] {
    if (o->prompt.empty() && o->prompts.empty() && o->results.empty())
      throw UsageError("pizza eval needs --prompt, --prompts or --results");
    run({*cmd}, *o);
  });
}

}  // namespace pizza::app
