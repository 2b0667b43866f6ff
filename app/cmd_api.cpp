// `pizza api`: black-box perturbation attribution over an OpenAI-compatible server.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "api/backend.h"
#include "api/client.h"
#include "api/config.h"
#include "app/batch.h"
#include "app/commands.h"
#include "app/common.h"
#include "app/engine_handoff.h"
#include "app/option_scope.h"
#include "perturbation/engine.h"
#include "report/report.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"
#include "util/json_writer.h"
#include "util/progress.h"

namespace pizza::app {

namespace {

using namespace perturbation;

struct Options {
  ApiClientCliOptions client;
  std::string model, prompt, endpoint = "chat", method = "occlusion";
  std::optional<std::string> system;
  std::string metric = "prob-diff", scoring = "free-running";
  std::string tokenizer, tokenizer_dir, embeddings;
  UnitCliOptions unit{"word", "", ""};
  StrategyCliOptions strategy;
  std::string extra_body, format, output, color = "auto";
  int64_t max_tokens = kDefaultMaxNewTokens;
  int top_logprobs = kDefaultTopLogprobs;
  std::optional<int64_t> seed;
  ContextCiteCliOptions context_cite;
  bool dry_run = false, legacy_max_tokens = false, quiet = false, ignore_location = true;
  std::optional<size_t> init_chunk_size, stride;
  std::optional<double> static_threshold;
  std::optional<int> max_depth;
};

std::string json_strings(const std::set<std::string>& values) {
  JsonWriter w;
  w.begin_array();
  for (const auto& v : values) w.value(v);
  w.end_array();
  return w.take();
}

// --dry-run: the requests of the first stage (all of occlusion; hierarchical's first chunks,
// a lower bound since later stages depend on the scores). Teacher-forced scoring requests
// carry the original output: exact when the original completion is cached, else estimated
// with an empty output (same count, fewer prompt tokens).
void print_dry_run(api::ApiClient& client, const api::HttpBackendOptions& bo, const Perturber& perturber,
                   const EngineOptions& eo, Scoring scoring) {
  const auto original = api::completion_request(bo, perturber.original().text);
  std::vector<std::vector<size_t>> sets;
  if (eo.algorithm == Algorithm::occlusion) {
    for (size_t u = 0; u < perturber.size(); ++u) sets.push_back({u});
  } else if (eo.algorithm == Algorithm::context_cite) {
    sets = context_cite_ablations(perturber.size(), eo.context_cite);
  } else {
    const size_t n = perturber.size();
    const size_t chunk = eo.hierarchical.init_chunk_size.value_or(std::max<size_t>(2, n / 2));
    sets = initial_chunks(n, chunk, eo.hierarchical.stride.value_or(std::max<size_t>(1, chunk / 2)));
  }
  std::vector<api::CompletionRequest> requests{original};
  std::string output;
  if (scoring == Scoring::teacher_forced) {
    if (client.dry_run(std::span(&original, 1)).to_send == 0) output = client.complete_all(std::span(&original, 1)).at(0).text;
    requests.push_back(api::scoring_request(bo, perturber.original().text, output));
  }
  for (const auto& s : sets) {
    auto text = perturber.perturb(s).text;
    requests.push_back(scoring == Scoring::teacher_forced ? api::scoring_request(bo, std::move(text), output)
                                                          : api::completion_request(bo, std::move(text)));
  }
  const auto e = client.dry_run(requests);
  std::cout << "dry run: " << e.requests << " requests" << (eo.algorithm == Algorithm::hierarchical ? " (first stage)" : "")
            << ", " << e.cached << " cached, " << e.to_send << " to send, ~" << e.prompt_tokens << " prompt tokens, <= "
            << e.completion_tokens << " completion tokens\n";
}

RunShape run_shape(const Options& o) {
  RunShape r;
  r.method = o.method;
  r.scoring = o.scoring;
  const std::vector<Metric> metrics = parse_metrics(o.metric);
  r.prob_diff = std::find(metrics.begin(), metrics.end(), Metric::prob_diff) != metrics.end();
  r.cosine = std::find(metrics.begin(), metrics.end(), Metric::cosine) != metrics.end();
  r.strategy = strategy_name(parse_strategy(o.strategy.strategy));
  r.custom_units = !o.unit.spans.empty() || !o.unit.regex.empty();
  r.endpoint = o.endpoint;
  return r;
}

// The run the options describe, checked before any request or model load.
struct ApiPlan {
  std::string prompt;
  EngineOptions eo;
  Scoring scoring = Scoring::free_running;
  StrategySpec strategy;
  api::Endpoint endpoint = api::Endpoint::Chat;
  UnitSpec unit;
};

// `embeddings`: whether this program can load an --embeddings model (NeedsEngine when one is
// named and it cannot: before the prompt is read).
ApiPlan plan_api(const GivenOptions& given, const Options& o, bool embeddings) {
  if (!o.embeddings.empty() && !embeddings) throw NeedsEngine{"--embeddings"};
  ApiPlan p;
  p.prompt = require_prompt(read_prompt(o.prompt));
  EngineOptions& eo = p.eo;
  eo.algorithm = parse_algorithm(o.method);
  p.scoring = parse_scoring(o.scoring);
  eo.scoring = p.scoring;
  eo.metrics = parse_metrics(o.metric);
  eo.ignore_output_location = o.ignore_location;
  eo.hierarchical = {o.init_chunk_size, o.stride, o.static_threshold, o.max_depth};
  eo.context_cite = context_cite_options(o.context_cite, o.seed.value_or(0));
  p.strategy = strategy_spec(o.strategy);
  if (o.endpoint != "chat" && o.endpoint != "completions")
    throw UsageError("--endpoint: unknown value '" + o.endpoint + "' (expected chat or completions)");
  check_scopes(given, api_scopes(), run_shape(o));
  if (p.strategy.kind == Strategy::nth_nearest && o.embeddings.empty())
    throw UsageError("--strategy nth-nearest needs --embeddings MODEL (a local checkpoint whose embedding table ranks the replacements)");
  for (auto m : eo.metrics)
    if (m == Metric::cosine && o.embeddings.empty())
      throw UsageError("--metric cosine needs --embeddings MODEL (a local checkpoint whose embedding table compares the outputs)");
  // Before the --embeddings model is loaded (the engine checks again for every backend).
  if (p.scoring == Scoring::teacher_forced) require_teacher_forceable(eo.metrics);
  p.endpoint = o.endpoint == "chat" ? api::Endpoint::Chat : api::Endpoint::Completions;
  if (o.system && p.endpoint != api::Endpoint::Chat)
    throw UsageError("--system needs --endpoint chat (completions send the prompt alone, with no messages)");
  if (o.system) require_utf8(*o.system, "--system");
  if (p.scoring == Scoring::teacher_forced && p.endpoint != api::Endpoint::Completions)
    throw UsageError("--scoring teacher-forced needs --endpoint completions (only legacy completions echo prompt log-probabilities)");
  if (o.max_tokens <= 0) throw UsageError("--max-new-tokens must be positive, got " + std::to_string(o.max_tokens));
  if (o.top_logprobs > kMaxApiTopLogprobs)
    throw UsageError("--top-logprobs must be 1.." + std::to_string(kMaxApiTopLogprobs) + " for a server (OpenAI's limit), got " +
                     std::to_string(o.top_logprobs));
  check_api_client_options(o.client);
  p.unit = parse_unit_options(o.unit);
  output_format(o.format, o.output);  // an unknown --format fails before any request
  return p;
}

// One attribution; nullopt for --dry-run (which prints its estimate instead).
std::optional<AttributionResult> attribute_api(const GivenOptions& given, const Options& o, EmbeddingLoader* embeddings) {
  // Validate everything before the first request.
  ApiPlan plan = plan_api(given, o, embeddings != nullptr);
  const std::string& prompt = plan.prompt;
  EngineOptions& eo = plan.eo;
  const Scoring scoring = plan.scoring;
  const StrategySpec& strategy = plan.strategy;
  const api::Endpoint endpoint = plan.endpoint;
  const UnitSpec& unit = plan.unit;

  ModelOptions tokenizer_source;  // no --model: the served model is remote
  tokenizer_source.tokenizer = o.tokenizer;
  tokenizer_source.tokenizer_dir = o.tokenizer_dir;
  const auto tokenizer = load_tokenizer_option(tokenizer_source);
  std::vector<Token> tokens;
  if (tokenizer) tokens = tokenizer->encode(prompt).tokens;
  if (unit.kind == UnitKind::token && !tokenizer)
    throw UsageError("--unit token needs --tokenizer FILE (or a tiktoken name with --tokenizer-dir); use --unit word otherwise");
  const auto units = make_units(prompt, tokens, unit);
  std::optional<int32_t> pad;
  if (tokenizer) pad = tokenizer->pad_id() ? tokenizer->pad_id() : tokenizer->unk_id();
  // Cosine and nth-nearest use a local model's embedding table; ids carry over only when --tokenizer
  // numbers tokens as that model does (else text is re-encoded in the table's vocabulary).
  EmbeddingTable emb;
  if (!o.embeddings.empty()) emb = embeddings->load(o.embeddings, tokenizer.get(), strategy, eo.metrics);
  eo.embeddings = emb.table.get();
  eo.shared_vocab = emb.shared_vocab;
  Perturber perturber(units, strategy, tokenizer.get(), eo.embeddings, eo.shared_vocab, pad);

  api::ClientOptions co = api_client_options(o.client);
  const std::string base_url = co.base_url;
  api::ApiClient client(std::move(co));

  api::HttpBackendOptions bo;
  bo.endpoint = endpoint;
  bo.model = o.model;
  bo.max_tokens = o.max_tokens;
  bo.top_logprobs = o.top_logprobs;
  bo.seed = o.seed;
  bo.legacy_max_tokens = o.legacy_max_tokens;
  bo.extra_body = o.extra_body;
  bo.teacher_forced = scoring == Scoring::teacher_forced;
  bo.system = o.system;
  if (o.dry_run) {
    print_dry_run(client, bo, perturber, eo, scoring);
    return std::nullopt;
  }
  api::HttpBackend backend(client, bo, base_url);

  ProgressBar bar("perturbing", !o.quiet);
  eo.progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
  auto er = run_engine(backend, perturber, eo);
  bar.finish();

  AttributionResult r;
  r.engine = "api";
  r.model_path = o.model;
  r.unit = std::string(unit_kind_name(unit.kind));
  r.text = prompt;
  r.output_text = er.original.text;
  r.inputs = input_units(units);
  for (const auto& t : er.original.tokens) r.outputs.push_back({t.id, t.token, std::exp(t.logprob)});
  apply_engine_result(er, eo, r);
  r.parameters = {
      {"endpoint", json_string(o.endpoint)},
      {"max_new_tokens", std::to_string(o.max_tokens)},
      {"top_logprobs", std::to_string(o.top_logprobs)},
      {"seed", o.seed ? std::to_string(*o.seed) : "null"},
      {"scoring", json_string(scoring_name(scoring))},
      {"strategy", json_string(strategy_name(strategy.kind))},
      {"metrics", metrics_json(eo.metrics)},
      {"model_calls", std::to_string(er.model_calls)},
  };
  if (o.system) r.parameters.emplace_back("system", json_string(*o.system));
  if (strategy.kind == Strategy::fixed) r.parameters.emplace_back("replacement", json_string(strategy.replacement));
  if (strategy.kind == Strategy::nth_nearest) r.parameters.emplace_back("nth", std::to_string(strategy.n));
  if (!o.embeddings.empty()) r.parameters.emplace_back("embeddings", json_string(o.embeddings));
  const auto& info = backend.info();
  JsonWriter server;
  server.begin_object().field("base_url", base_url).key("served_models").raw(json_strings(info.models));
  server.key("system_fingerprints").raw(json_strings(info.fingerprints));
  server.key("usage").begin_object().field("prompt_tokens", info.usage.prompt).field("completion_tokens", info.usage.completion)
      .end_object();
  server.field("requests", static_cast<int64_t>(info.requests)).field("sent", static_cast<int64_t>(info.sent)).end_object();
  r.extra_json.emplace_back("server", server.take());
  r.extra_json.emplace_back("experiment_log", std::move(er.experiment_log));
  return r;
}

}  // namespace

void add_api_command(CLI::App& app, std::shared_ptr<EmbeddingLoader> embeddings) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("api", "Attribute an OpenAI-compatible server's output to its prompt (black-box perturbation)");
  cmd->add_option("--model,-m", o->model, "Model name the server serves")->required();
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text ('-' reads standard input)")->required();
  add_api_client_options(cmd, o->client);
  cmd->add_option("--endpoint", o->endpoint, "chat or completions")->capture_default_str();
  cmd->add_option("--system", o->system, "Chat: a system message sent before the prompt's user message (never perturbed)");
  cmd->add_option("--method", o->method, "occlusion, hierarchical or context-cite")->capture_default_str();
  add_strategy_options(cmd, o->strategy);
  cmd->add_option("--embeddings", o->embeddings,
                  "Local model (directory or hub repo id) whose embedding table serves nth-nearest and cosine");
  cmd->add_option("--metric", o->metric,
                  "prob-diff, logprob-diff, cosine (with --embeddings), token-displacement (comma-separated: one matrix each)")
      ->capture_default_str();
  add_unit_options(cmd, o->unit, "Input units: word, sentence or token (token needs --tokenizer)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file or directory, or a tiktoken name with --tokenizer-dir");
  cmd->add_option("--tokenizer-dir", o->tokenizer_dir, "Directory holding tiktoken rank files (NAME.tiktoken)");
  cmd->add_option("--scoring", o->scoring, "free-running or teacher-forced (completions endpoint with echo)")->capture_default_str();
  cmd->add_flag("--ignore-output-location,!--at-output-location", o->ignore_location,
                "Free-running prob-diff: find each output token anywhere in the perturbed output (default) or at its position");
  add_max_new_tokens_option(cmd, o->max_tokens, "Tokens to generate");
  add_top_logprobs_option(cmd, o->top_logprobs, "Alternatives per generated token (1.." + std::to_string(kMaxApiTopLogprobs) + ")");
  cmd->add_option("--seed", o->seed, "Sampling seed sent to the server; also context-cite's ablation seed (default 0)");
  cmd->add_flag("--legacy-max-tokens", o->legacy_max_tokens, "Chat: send max_tokens instead of max_completion_tokens");
  cmd->add_flag("--dry-run", o->dry_run, "Print how many requests would be sent (and their token estimate); send none");
  cmd->add_option("--extra-body", o->extra_body, "JSON object merged into every request body");
  add_hierarchical_options(cmd, o->init_chunk_size, o->stride, o->static_threshold, o->max_depth);
  add_context_cite_options(cmd, o->context_cite);
  add_output_options(cmd, o->format, o->output, o->color, o->quiet);
  auto batch = BatchMode::add(cmd, cmd->get_option("--prompt"), {"embeddings"});
  cmd->callback([o, batch, embeddings, cmd] {
    if (batch->active()) {
      if (o->dry_run) throw UsageError("--dry-run works on one --prompt, not with --prompts");
      check_scopes({*cmd}, api_scopes(), run_shape(*o));
      const GivenOptions record{*cmd, &batch->record_options()};
      const BatchJob job = batch->prepare(*o, [&](const Options& r) { plan_api(record, r, embeddings != nullptr); });
      job.run(*o, [&](const Options& r) { return *attribute_api(record, r, embeddings.get()); });
      return;
    }
    if (auto result = attribute_api({*cmd}, *o, embeddings.get())) write_result(*result, output_format(o->format, o->output), o->output, o->color);
  });
}

}  // namespace pizza::app
