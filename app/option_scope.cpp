#include "app/option_scope.h"

#include <algorithm>
#include <vector>

#include "util/error.h"

namespace pizza::app {

namespace {

std::string by_method(const RunShape& r) {
  return r.methods_given.empty() ? "to --method " + r.method : "to --methods " + r.methods_given;
}
std::string by_metrics(const RunShape& r) {
  std::string list;
  for (const auto& m : r.faithfulness_metrics) list += (list.empty() ? "" : ",") + m;
  return "to --metrics " + list;
}
std::string by_scoring(const RunShape& r) { return "to --scoring " + r.scoring; }
std::string by_strategy(const RunShape& r) { return "to --strategy " + r.strategy; }
std::string by_target_text(const RunShape&) { return "with --target-text"; }
std::string by_custom_units(const RunShape&) { return "with --spans or --unit-regex"; }
std::string by_endpoint(const RunShape& r) { return "to --endpoint " + r.endpoint; }

bool gradient(const RunShape& r) { return r.gradient; }
bool perturbation(const RunShape& r) { return !r.gradient; }
bool saliency(const RunShape& r) { return r.method == "saliency"; }
bool signed_gradient(const RunShape& r) { return r.gradient && r.method != "saliency"; }
bool integrated_gradients(const RunShape& r) { return r.method == "integrated-gradients"; }
bool hierarchical(const RunShape& r) { return r.method == "hierarchical"; }
bool context_cite(const RunShape& r) { return r.method == "context-cite"; }
bool free_running(const RunShape& r) { return !r.gradient && r.scoring == "free-running"; }
bool located(const RunShape& r) { return free_running(r) && r.prob_diff; }
bool fixed(const RunShape& r) { return !r.gradient && r.strategy == "fixed"; }
bool nth_nearest(const RunShape& r) { return !r.gradient && r.strategy == "nth-nearest"; }
bool uses_embeddings(const RunShape& r) { return !r.gradient && (r.strategy == "nth-nearest" || r.cosine); }
bool generates(const RunShape& r) { return !r.target_text; }
bool named_units(const RunShape& r) { return !r.custom_units; }
bool chat_endpoint(const RunShape& r) { return r.endpoint == "chat"; }
bool has_metric(const RunShape& r, std::string_view m) {
  return std::find(r.faithfulness_metrics.begin(), r.faithfulness_metrics.end(), m) != r.faithfulness_metrics.end();
}
bool topk_metric(const RunShape& r) { return has_metric(r, "topk"); }
bool over_server(const RunShape& r) { return r.remote; }
// pizza eval removes units with --strategy whatever the method (its metrics do).
bool removes_fixed(const RunShape& r) { return r.strategy == "fixed"; }
bool removes_nth_nearest(const RunShape& r) { return r.strategy == "nth-nearest"; }
bool local_model(const RunShape& r) { return !r.remote; }
bool own_attributions(const RunShape& r) { return !r.results; }
std::string by_base_url(const RunShape& r) { return r.remote ? "with --base-url" : "without --base-url"; }
std::string by_results(const RunShape&) { return "with --results"; }
bool lds_metric(const RunShape& r) { return has_metric(r, "lds"); }

// Gradient methods' options, the same in pizza local and pizza eval.
const std::vector<OptionScope>& gradient_scopes() {
  static const std::vector<OptionScope> scopes = {
      {"--target", gradient, by_method, "gradient methods (perturbation methods score with --metric)"},
      {"--norm", saliency, by_method, "saliency"},
      {"--abs", signed_gradient, by_method, "signed gradient methods (saliency's norms are never negative)"},
      {"--ig-steps", integrated_gradients, by_method, "integrated-gradients"},
      {"--ig-baseline", integrated_gradients, by_method, "integrated-gradients"},
      {"--aggregate", gradient, by_method, "gradient methods (perturbation removes whole units)"},
  };
  return scopes;
}

// Options of the perturbation engine, the same in pizza local and pizza api.
const std::vector<OptionScope>& perturbation_scopes() {
  static const std::vector<OptionScope> scopes = {
      {"--strategy", perturbation, by_method, "perturbation methods"},
      {"--replacement", fixed, by_strategy, "--strategy fixed"},
      {"--nth", nth_nearest, by_strategy, "--strategy nth-nearest"},
      {"--embeddings", uses_embeddings, by_strategy, "--strategy nth-nearest or --metric cosine"},
      {"--metric", perturbation, by_method, "perturbation methods"},
      {"--scoring", perturbation, by_method, "perturbation methods"},
      {"--ignore-output-location", located, by_scoring, "free-running scoring with --metric prob-diff"},
      {"--init-chunk-size", hierarchical, by_method, "hierarchical"},
      {"--stride", hierarchical, by_method, "hierarchical"},
      {"--static-threshold", hierarchical, by_method, "hierarchical"},
      {"--max-depth", hierarchical, by_method, "hierarchical"},
      {"--ablations", context_cite, by_method, "context-cite"},
      {"--keep-prob", context_cite, by_method, "context-cite"},
      {"--lasso-alpha", context_cite, by_method, "context-cite"},
      {"--unit", named_units, by_custom_units, "runs without custom units (the spans or matches are the units)"},
  };
  return scopes;
}

std::vector<OptionScope> join(std::vector<OptionScope> a, const std::vector<OptionScope>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

std::span<const OptionScope> local_scopes() {
  static const std::vector<OptionScope> scopes = join(join(gradient_scopes(),
      {
          {"--algorithm", gradient, by_method, "gradient methods"},
          {"--normalize", gradient, by_method, "gradient methods"},
          {"--skip-special-tokens", gradient, by_method, "gradient methods (perturbation never removes special tokens)"},
          {"--top-logprobs", free_running, by_scoring, "free-running scoring"},
          {"--seed", context_cite, by_method, "context-cite (the seed of its ablations)"},
          {"--max-new-tokens", generates, by_target_text, "generated outputs (the continuation sets the length)"},
      }),
      perturbation_scopes());
  return scopes;
}

std::span<const OptionScope> api_scopes() {
  static const std::vector<OptionScope> scopes = join(
      {
          {"--legacy-max-tokens", chat_endpoint, by_endpoint, "--endpoint chat"},
      },
      perturbation_scopes());
  return scopes;
}

std::span<const OptionScope> eval_scopes() {
  static const std::vector<OptionScope> scopes = join(gradient_scopes(),
      {
          {"--k", topk_metric, by_metrics, "--metrics topk"},
          {"--ablations", lds_metric, by_metrics, "--metrics lds (its random masks)"},
          {"--keep-prob", lds_metric, by_metrics, "--metrics lds (its random masks)"},
          {"--max-new-tokens", generates, by_target_text, "generated outputs (the continuation sets the length)"},
          {"--replacement", removes_fixed, by_strategy, "--strategy fixed"},
          {"--nth", removes_nth_nearest, by_strategy, "--strategy nth-nearest"},
          {"--unit", own_attributions, by_results, "runs that attribute (saved results carry their units)"},
          {"--spans", own_attributions, by_results, "runs that attribute (saved results carry their units)"},
          {"--unit-regex", own_attributions, by_results, "runs that attribute (saved results carry their units)"},
      });
  // Where the model runs: a server's client options, or a local model's runtime.
  static const std::vector<OptionScope> with_mode = [] {
    std::vector<OptionScope> all = scopes;
    for (std::string_view o : {"--api-key-file", "--concurrency", "--timeout", "--max-retries", "--max-wait",
                               "--max-response-bytes", "--rpm", "--tpm", "--cache-dir", "--no-cache"})
      all.push_back({o, over_server, by_base_url, "scoring over a server (--base-url)"});
    for (std::string_view o : {"--threads", "--device", "--dtype", "--no-mmap", "--max-memory", "--max-batch"})
      all.push_back({o, local_model, by_base_url, "a local model"});
    return all;
  }();
  return with_mode;
}

std::span<const std::string_view> every_run_options(std::string_view command) {
  // Where the prompt and model come from, where the result goes, and batch mode.
  static const std::vector<std::string_view> local = {
      "--help", "--config", "--model", "--tokenizer", "--tokenizer-dir", "--hf-token-file", "--offline", "--no-download",
      "--threads", "--device", "--dtype", "--no-mmap", "--prompt", "--prompts", "--target-text", "--contrast-text",
      "--chat", "--system", "--chat-template", "--method", "--max-batch", "--max-memory", "--spans", "--unit-regex",
      "--format", "--output", "--color", "--quiet", "--resume", "--retry-failed", "--force", "--shard"};
  static const std::vector<std::string_view> api = {
      "--help", "--config", "--model", "--prompt", "--prompts", "--base-url", "--api-key-file", "--concurrency",
      "--timeout", "--max-retries", "--max-wait", "--max-response-bytes", "--rpm", "--tpm", "--cache-dir", "--no-cache",
      "--endpoint", "--system", "--method", "--spans", "--unit-regex", "--tokenizer", "--tokenizer-dir",
      "--max-new-tokens", "--top-logprobs", "--seed", "--dry-run", "--extra-body", "--format", "--output", "--color",
      "--quiet", "--resume", "--retry-failed", "--force", "--shard"};
  static const std::vector<std::string_view> eval = {
      "--help", "--config", "--model", "--tokenizer", "--tokenizer-dir", "--hf-token-file", "--offline", "--no-download",
      "--prompt", "--prompts", "--results", "--target-text", "--methods", "--metrics", "--level", "--seed", "--strategy",
      "--base-url", "--format", "--output", "--color", "--quiet"};
  if (command == "local") return local;
  if (command == "api") return api;
  if (command == "eval") return eval;
  return {};
}

void check_scopes(const GivenOptions& given, std::span<const OptionScope> scopes, std::span<const RunShape> runs) {
  for (const OptionScope& s : scopes) {
    const CLI::Option* opt = given.cmd.get_option_no_throw(std::string(s.option));
    if (opt == nullptr || opt->count() == 0) continue;
    if (std::any_of(runs.begin(), runs.end(), s.applies)) continue;
    if (given.only != nullptr && !given.only->contains(opt)) continue;
    throw UsageError(std::string(s.option) + " does not apply " + s.excluded_by(runs.front()) + "; it is for " +
                     std::string(s.applies_to));
  }
}

void check_scopes(const GivenOptions& given, std::span<const OptionScope> scopes, const RunShape& run) {
  check_scopes(given, scopes, std::span(&run, 1));
}

}  // namespace pizza::app
