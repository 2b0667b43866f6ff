// `pizza local`: white-box attribution on a local checkpoint.
#include <chrono>
#include <iostream>

#include "app/batch.h"
#include "app/commands.h"
#include "app/common.h"
#include "app/engine/model_options.h"
#include "app/option_scope.h"
#include "engine/local.h"
#include "engine/local_perturbation.h"
#include "report/report.h"
#include "util/allocator.h"
#include "util/error.h"
#include "util/progress.h"

namespace pizza::app {

namespace {

struct Options {
  ModelOptions model;
  std::string prompt, target_text, contrast_text, method = "saliency";
  std::string algorithm = "fast", normalize = "none";
  UnitCliOptions unit;
  GradientCliOptions gradient;
  StrategyCliOptions strategy;
  std::string format, output, color = "auto";
  int64_t max_new_tokens = kDefaultMaxNewTokens, max_batch = 16;
  std::string max_memory;
  bool skip_special = false, quiet = false;
  // Perturbation methods (occlusion, hierarchical).
  std::string embeddings, metric = "prob-diff", scoring = "teacher-forced";
  int top_logprobs = kDefaultTopLogprobs;
  bool ignore_location = true;
  std::optional<size_t> init_chunk_size, stride;
  std::optional<double> static_threshold;
  std::optional<int> max_depth;
  ContextCiteCliOptions context_cite;
  int64_t seed = 0;
  ChatCliOptions chat;
};

// The model (and the --embeddings table), loaded once for one prompt or a whole batch.
struct LoadedModels {
  std::unique_ptr<LanguageModel> lm, embeddings;
  double load_ms = 0;
};

LoadedModels load_models(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadedModels m;
  m.lm = load_model(o.model);
  if (!o.embeddings.empty()) {
    ModelOptions eo = o.model;
    eo.model = o.embeddings;
    eo.tokenizer.clear();
    m.embeddings = load_model(eo);
  }
  m.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

// A request built and checked from the options (before any model loads), run on the models.
using PreparedRun = std::function<AttributionResult(const LoadedModels&)>;

// What gradient and perturbation requests share: the prompt (and its chat template), the
// explained continuation, the units and the memory budget.
template <class Request>
void fill_shared(const Options& o, Request& req) {
  req.prompt = require_prompt(read_prompt(o.prompt));
  if (!o.target_text.empty()) req.target_text = o.target_text;
  if (!o.contrast_text.empty()) req.contrast_text = o.contrast_text;
  req.max_new_tokens = o.max_new_tokens;
  req.unit = parse_unit_options(o.unit);
  req.max_memory = max_memory_option(o.max_memory);
  req.chat = chat_options(o.chat);
}

// --method occlusion|hierarchical: the perturbation engine over the local model.
PreparedRun prepare_perturbation(const Options& o) {
  LocalPerturbationRequest req;
  fill_shared(o, req);
  req.engine.algorithm = perturbation::parse_algorithm(o.method);
  req.engine.scoring = perturbation::parse_scoring(o.scoring);
  req.engine.metrics = perturbation::parse_metrics(o.metric);
  req.engine.ignore_output_location = o.ignore_location;
  req.engine.hierarchical = {o.init_chunk_size, o.stride, o.static_threshold, o.max_depth};
  req.engine.context_cite = context_cite_options(o.context_cite, o.seed);
  req.strategy = strategy_spec(o.strategy);
  req.backend.max_batch = o.max_batch;
  req.backend.top_k = o.top_logprobs;
  if (o.max_batch <= 0) throw UsageError("--max-batch must be positive, got " + std::to_string(o.max_batch));
  return [req, quiet = o.quiet](const LoadedModels& m) mutable {
    req.embeddings = m.embeddings.get();
    ProgressBar bar("perturbing", !quiet);
    req.engine.progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
    return run_local_perturbation(*m.lm, req);
  };
}

PreparedRun prepare_gradient(const Options& o) {
  LocalRequest req;
  fill_shared(o, req);
  req.method = o.method;
  apply_gradient_options(o.gradient, req);
  req.algorithm = o.algorithm == "reference" ? GradientAlgorithm::reference : GradientAlgorithm::fast;
  req.max_batch = o.max_batch;
  req.skip_special = o.skip_special;
  req.normalize = parse_normalize(o.normalize);
  if (!find_gradient_method(req.method))
    throw UsageError("--method: unknown value '" + req.method +
                     "' (expected saliency, input-x-gradient, integrated-gradients, attnlrp, cp-lrp, occlusion, "
                     "hierarchical or context-cite)");
  return [req, quiet = o.quiet](const LoadedModels& m) mutable {
    ProgressBar bar("attributing rows", !quiet);
    req.progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
    return run_local_gradient(*m.lm, req);
  };
}


RunShape run_shape(const Options& o) {
  RunShape r;
  r.method = o.method;
  r.gradient = !perturbation::find_algorithm(o.method).has_value();
  r.scoring = o.scoring;
  for (perturbation::Metric m : perturbation::parse_metrics(o.metric)) {
    r.prob_diff = r.prob_diff || m == perturbation::Metric::prob_diff;
    r.cosine = r.cosine || m == perturbation::Metric::cosine;
  }
  r.strategy = perturbation::strategy_name(perturbation::parse_strategy(o.strategy.strategy));
  r.target_text = !o.target_text.empty();
  r.custom_units = !o.unit.spans.empty() || !o.unit.regex.empty();
  return r;
}

// Checks the options (`given`: the command line's and config file's, or a batch record's)
// before any model loads, and builds the run.
PreparedRun prepare(const GivenOptions& given, const Options& o) {
  PreparedRun run = perturbation::find_algorithm(o.method) ? prepare_perturbation(o) : prepare_gradient(o);
  check_scopes(given, local_scopes(), run_shape(o));
  return [run, path = o.model.model](const LoadedModels& m) {
    AttributionResult result = run(m);
    result.model_path = path;
    result.timings.load_ms = m.load_ms;
    result.timings.peak_rss_bytes = peak_rss_bytes();
    return result;
  };
}

}  // namespace

void add_local_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = add_engine_subcommand(app, "local");
  add_model_options(cmd, o->model);
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text ('-' reads standard input)")->required();
  add_max_new_tokens_option(cmd, o->max_new_tokens, "Tokens to generate greedily");
  cmd->add_option("--target-text", o->target_text, "Attribute this continuation instead of generating (teacher forcing)");
  cmd->add_option("--contrast-text", o->contrast_text,
                  "Explain the output rather than this foil (one token per output token): target(output) - target(foil)");
  add_chat_options(cmd, o->chat);
  cmd->add_option("--method", o->method,
                  "saliency, input-x-gradient, integrated-gradients (gradients) or occlusion, hierarchical, context-cite (perturbation)")
      ->capture_default_str();
  add_gradient_options(cmd, o->gradient);
  cmd->add_option("--algorithm", o->algorithm, "fast (batched) or reference (PIZZA's per-step loop)")
      ->check(CLI::IsMember({"fast", "reference"}))->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Gradient methods: rows per vectorised backward pass; occlusion: prompts per forward pass")->capture_default_str();
  add_max_memory_option(cmd, o->max_memory);
  add_unit_options(cmd, o->unit, "Input units: token, word or sentence");
  add_skip_special_tokens_option(cmd, o->skip_special, "Hide BOS and other special tokens");
  cmd->add_option("--normalize", o->normalize, "none, row-max or row-sum")->capture_default_str();
  add_strategy_options(cmd, o->strategy);
  cmd->add_option("--embeddings", o->embeddings, "Embedding table for nth-nearest and cosine: another model (default: the model's)");
  cmd->add_option("--metric", o->metric, "prob-diff, logprob-diff, cosine, token-displacement (comma-separated: one matrix each)")
      ->capture_default_str();
  cmd->add_option("--scoring", o->scoring, "teacher-forced (exact, batched) or free-running (greedy completions)")
      ->capture_default_str();
  cmd->add_flag("--ignore-output-location,!--at-output-location", o->ignore_location,
                "Free-running prob-diff: find each output token anywhere in the perturbed output (default) or at its position");
  add_top_logprobs_option(cmd, o->top_logprobs, "Free-running: alternatives kept per generated token");
  add_hierarchical_options(cmd, o->init_chunk_size, o->stride, o->static_threshold, o->max_depth);
  add_context_cite_options(cmd, o->context_cite);
  cmd->add_option("--seed", o->seed, "context-cite: seed of the ablations")->capture_default_str();
  add_output_options(cmd, o->format, o->output, o->color, o->quiet);

  auto batch = BatchMode::add(cmd, cmd->get_option("--prompt"), {"embeddings"});

  cmd->callback([o, batch, cmd] {
    if (batch->active()) {
      // A broken prompt file or record fails before the model load.
      check_scopes({*cmd}, local_scopes(), run_shape(*o));
      const auto record = [cmd, batch](const Options& r) { return prepare({*cmd, &batch->record_options()}, r); };
      const BatchJob job = batch->prepare(*o, [&](const Options& r) { record(r); });
      const LoadedModels m = load_models(*o);
      job.run(*o, [&](const Options& r) { return record(r)(m); });
      return;
    }
    // Validate everything before the (slow) model load.
    const PreparedRun run = prepare({*cmd}, *o);
    const auto format = output_format(o->format, o->output);
    const LoadedModels m = load_models(*o);
    write_result(run(m), format, o->output, o->color);
  });
}

}  // namespace pizza::app
