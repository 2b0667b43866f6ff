#include "app/common.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <limits>
#include <set>

#include "api/config.h"
#include "checkpoint/model_tokenizer.h"
#include "hub/hub.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json_writer.h"
#include "util/memory.h"
#include "util/standard_input.h"
#include "util/utf8.h"

namespace pizza::app {

void add_model_source_options(CLI::App* cmd, ModelOptions& opts, bool model_required) {
  cmd->add_option("--model,-m", opts.model, "Model directory, llama2.c .bin, or Hugging Face repo id org/name[@revision]")
      ->required(model_required);
  cmd->add_option("--tokenizer", opts.tokenizer,
                  "Tokenizer file or directory, or a tiktoken encoding name with --tokenizer-dir (default: the model's)");
  cmd->add_option("--tokenizer-dir", opts.tokenizer_dir, "Directory holding tiktoken rank files (NAME.tiktoken)");
  cmd->add_option("--hf-token-file", opts.hf_token_file, "File holding a Hugging Face token (else $HF_TOKEN)");
  cmd->add_flag("--offline", opts.offline, "Never use the network (as HF_HUB_OFFLINE=1)");
  cmd->add_flag("--no-download", opts.no_download, "Use the Hugging Face cache only; do not download missing models");
}

void add_max_new_tokens_option(CLI::App* cmd, int64_t& value, const std::string& help) {
  // One option with both names, so that a config file's key and a command-line flag are the same
  // option whichever spelling each uses (the command line wins). A separate hidden alias option
  // would let a config key for one spelling override the other spelling's flag.
  cmd->add_option("-n,--max-new-tokens,--max-tokens", value, help)
      ->capture_default_str();
}

void add_top_logprobs_option(CLI::App* cmd, int& value, const std::string& help) {
  cmd->add_option("--top-logprobs,--top-k", value, help)
      ->check(CLI::Range(1, kMaxTopLogprobs))
      ->capture_default_str();
}

void add_skip_special_tokens_option(CLI::App* cmd, bool& value, const std::string& help) {
  cmd->add_flag("--skip-special-tokens,--no-special-tokens", value, help);
}

namespace {

// Names kept so that old scripts and config files run; --help shows only the current ones.
const std::set<std::string, std::less<>> kFormerNames = {"--max-tokens", "--top-k", "--perturbation", "--no-special-tokens"};

class FormerNamesHidden : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool positional) const override {
    const std::string all = CLI::Formatter::make_option_name(opt, positional);
    if (positional) return all;
    // CLI11 joins the names with ','.
    std::string shown;
    size_t start = 0;
    while (start <= all.size()) {
      size_t end = all.find(',', start);
      if (end == std::string::npos) end = all.size();
      const std::string name = all.substr(start, end - start);
      if (!kFormerNames.contains(name.substr(0, name.find('{')))) shown += (shown.empty() ? "" : ",") + name;
      start = end + 1;
    }
    return shown;
  }
};

}  // namespace

void hide_former_names(CLI::App& app) { app.formatter(std::make_shared<FormerNamesHidden>()); }

void add_model_options(CLI::App* cmd, ModelOptions& opts) {
  add_model_source_options(cmd, opts, true);
  cmd->add_option("--threads", opts.runtime.threads, "CPU threads (default: all cores this process may use)");
  cmd->add_option("--device", opts.runtime.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", opts.runtime.dtype, "float32, float64 or bfloat16")->capture_default_str();
  cmd->add_flag("!--no-mmap", opts.runtime.map_weights,
                "Read the weight files into memory at load instead of mapping them (for files rewritten in place while pizza runs)");
}

void add_max_memory_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--max-memory", value,
                  "Memory the run may use, weights included (512M, 2G; K/M/G/T are powers of 1024): gradient rows per "
                  "backward and perturbed prompts per forward shrink to fit (default: 3/4 of the available memory, "
                  "within the cgroup's limit)");
}

std::optional<int64_t> max_memory_option(const std::string& value) {
  if (value.empty()) return std::nullopt;
  return parse_memory_size(value, "--max-memory");
}

std::filesystem::path resolve_model_path(const ModelOptions& opts, hub::Need need) {
  hub::HubOptions ho;
  ho.need = need;
  if (!opts.hf_token_file.empty()) ho.token_file = opts.hf_token_file;
  if (opts.offline) ho.offline = true;
  ho.allow_download = !opts.no_download;
  return hub::resolve_model(opts.model, ho);
}

std::unique_ptr<Tokenizer> load_tokenizer_option(const ModelOptions& opts) {
  if (!opts.tokenizer.empty()) {
    if (!opts.tokenizer_dir.empty()) return load_tokenizer(std::string_view(opts.tokenizer), opts.tokenizer_dir);
    return load_tokenizer(std::filesystem::path(opts.tokenizer));
  }
  if (opts.model.empty()) return nullptr;
  return load_model_tokenizer(resolve_model_path(opts, hub::Need::tokenizer));
}

std::string read_prompt(const std::string& arg) {
  if (arg != "-") {
    require_utf8(arg, "--prompt");
    return arg;
  }
  std::string text = standard_input("the prompt");
  // `echo "..." | pizza ... -p -` ends the text with a newline the user did not mean as part of
  // the prompt: strip one (\n or \r\n), as shells strip it from $(...).
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
  }
  require_utf8(text, "--prompt - (standard input)");
  return text;
}

std::string require_prompt(std::string prompt) {
  if (prompt.empty()) throw UsageError("--prompt is empty: there is nothing to attribute the output to");
  return prompt;
}

void add_unit_options(CLI::App* cmd, UnitCliOptions& o, const std::string& unit_help) {
  cmd->add_option("--unit", o.unit, unit_help)->capture_default_str();
  cmd->add_option("--spans", o.spans, "Custom units as byte spans of the prompt: a:b,c:d");
  cmd->add_option("--unit-regex", o.regex, "Custom units: each regex match is a unit");
}

UnitSpec parse_unit_options(const UnitCliOptions& o) {
  if (!o.spans.empty() && !o.regex.empty()) throw UsageError("--spans and --unit-regex cannot be combined");
  UnitSpec spec;
  if (!o.spans.empty()) {
    spec.kind = UnitKind::spans;
    spec.spans = parse_spans(o.spans);
  } else if (!o.regex.empty()) {
    spec.kind = UnitKind::regex;
    spec.regex = o.regex;
  } else {
    spec.kind = parse_unit_kind(o.unit);
  }
  return spec;
}

void add_strategy_options(CLI::App* cmd, StrategyCliOptions& o) {
  cmd->add_option("--strategy,--perturbation", o.strategy,
                  "How a unit is removed: delete, fixed, nth-nearest, pad or mask (local: out of attention)")
      ->capture_default_str();
  cmd->add_option("--replacement", o.replacement, "Replacement text of --strategy fixed");
  // Not "--n": a batch record or TOML key "n" reads as a count, never as this rank.
  cmd->add_option("--nth", o.nth, "--strategy nth-nearest: rank of the replacement (0 = itself, -1 = farthest)")
      ->capture_default_str();
}

perturbation::StrategySpec strategy_spec(const StrategyCliOptions& o) {
  perturbation::StrategySpec spec;
  spec.kind = perturbation::parse_strategy(o.strategy);
  spec.replacement = o.replacement;
  spec.n = o.nth;
  if (spec.kind == perturbation::Strategy::fixed && o.replacement.empty())
    throw UsageError("--strategy fixed needs --replacement TEXT");
  return spec;
}

void add_gradient_options(CLI::App* cmd, GradientCliOptions& o) {
  cmd->add_option("--target", o.target,
                  "Gradient methods: prob, logprob, logit or pizza-legacy (default: each method's own, prob; logit for "
                  "attnlrp and cp-lrp)");
  cmd->add_option("--norm", o.norm, "Saliency norm over the hidden dimension: l1 or l2")
      ->check(CLI::IsMember({"l1", "l2"}))->capture_default_str();
  cmd->add_flag("--abs", o.abs, "Magnitudes of signed methods");
  cmd->add_option("--ig-steps", o.ig_steps, "Integrated-gradients steps")->capture_default_str();
  cmd->add_option("--ig-baseline", o.baseline, "Integrated-gradients baseline: zero or pad")
      ->check(CLI::IsMember({"zero", "pad"}))->capture_default_str();
  cmd->add_option("--aggregate", o.aggregate, "Token scores into units: sum, mean, max or absmax")->capture_default_str();
}

std::optional<report::Format> output_format(const std::string& format, const std::string& output) {
  // Called before any work: a run must not compute for minutes and then fail to write.
  if (!output.empty()) check_writable(output);
  if (!format.empty()) return report::parse_format(format);
  if (!output.empty()) return report::format_from_extension(output);
  return std::nullopt;
}

void add_format_output_options(CLI::App* cmd, std::string& format, std::string& output, const std::string& formats) {
  cmd->add_option("-f,--format", format, formats);
  cmd->add_option("-o,--output", output, "Write to this file (atomically) instead of stdout");
}

std::string text_format(const std::string& output, std::initializer_list<std::string_view> known) {
  std::string ext = std::filesystem::path(output).extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view k : known)
    if (k == ext) return ext;
  return std::string(*known.begin());
}

void write_output(const std::string& text, const std::string& output) {
  if (!output.empty()) {
    write_file_atomic(output, text);
    return;
  }
  std::cout << text;
  std::cout.flush();
  if (!std::cout) throw InputError("cannot write to standard output");
}

void add_output_options(CLI::App* cmd, std::string& format, std::string& output, std::string& color, bool& quiet) {
  add_format_output_options(cmd, format, output,
                            "table, csv, json, jsonl or html (default: from the --output file's extension, else table)");
  cmd->add_option("--color", color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", quiet, "No progress bar");
}

void add_hierarchical_options(CLI::App* cmd, std::optional<size_t>& init_chunk_size, std::optional<size_t>& stride,
                              std::optional<double>& static_threshold, std::optional<int>& max_depth) {
  // Counts are checked as written: CLI11 would read "-1" into a size_t as 2^64 - 1.
  const CLI::Range positive(int64_t{1}, std::numeric_limits<int64_t>::max(), "POSITIVE");
  cmd->add_option("--init-chunk-size", init_chunk_size, "Hierarchical: first chunk size in units (default max(2, units/2))")
      ->check(positive);
  cmd->add_option("--stride", stride, "Hierarchical: first chunks' stride (default chunk/2)")->check(positive);
  // Finite: it is compared with scores and recorded among the result's JSON parameters.
  const CLI::Validator finite(
      [](std::string& s) {
        double v = 0;
        return CLI::detail::lexical_cast(s, v) && std::isfinite(v) ? std::string() : "must be a finite number, got " + s;
      },
      "NUMBER");
  cmd->add_option("--static-threshold", static_threshold, "Hierarchical: also split chunks scoring above this")
      ->check(finite);
  cmd->add_option("--max-depth", max_depth, "Hierarchical: deepest split level (default: until nothing splits)")
      ->check(CLI::NonNegativeNumber);
}

report::ColorMode color_mode(const std::string& color) {
  return color == "always" ? report::ColorMode::always : color == "never" ? report::ColorMode::never : report::ColorMode::auto_;
}

void write_result(const AttributionResult& result, std::optional<report::Format> format, const std::string& output,
                  const std::string& color) {
  report::write(result, format, output, report::detect_render_options(color_mode(color)));
}

void add_api_client_options(CLI::App* cmd, ApiClientCliOptions& o) {
  cmd->add_option("--base-url", o.base_url, "Server base URL ending in /v1 (default: $OPENAI_BASE_URL, else OpenAI)");
  cmd->add_option("--api-key-file", o.api_key_file, "File holding the API key (default: $OPENAI_API_KEY)");
  cmd->add_option("--concurrency", o.concurrency, "Requests in flight")->capture_default_str();
  cmd->add_option("--timeout", o.timeout, "Seconds per request")->capture_default_str();
  cmd->add_option("--max-retries", o.max_retries, "Retries per request")->capture_default_str();
  cmd->add_option("--max-wait", o.max_wait,
                  "Seconds the whole run may spend waiting on retries and rate limits (Retry-After included)")
      ->capture_default_str();
  cmd->add_option("--max-response-bytes", o.max_response_bytes, "Largest response body accepted (bytes)")
      ->capture_default_str();
  cmd->add_option("--rpm", o.rpm, "Client-side requests-per-minute limit (0: none)");
  cmd->add_option("--tpm", o.tpm, "Client-side tokens-per-minute limit (0: none)");
  cmd->add_option("--cache-dir", o.cache_dir, "Response cache (default: $XDG_CACHE_HOME/pizza/api)");
  cmd->add_flag("--no-cache", o.no_cache, "Neither read nor write the response cache");
}

void check_api_client_options(const ApiClientCliOptions& o) {
  if (o.concurrency <= 0) throw UsageError("--concurrency must be positive, got " + std::to_string(o.concurrency));
  if (o.max_response_bytes <= 0)
    throw UsageError("--max-response-bytes must be positive, got " + std::to_string(o.max_response_bytes));
  if (!(o.max_wait >= 0) || !std::isfinite(o.max_wait))
    throw UsageError("--max-wait must be a number of seconds >= 0, got " + format_number_text(o.max_wait));
}

api::ClientOptions api_client_options(const ApiClientCliOptions& o) {
  api::ClientOptions co;
  co.base_url = api::resolve_base_url(o.base_url.empty() ? std::nullopt : std::optional(o.base_url), std::getenv("OPENAI_BASE_URL"));
  co.api_key = api::resolve_api_key(o.api_key_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.api_key_file),
                                    std::getenv("OPENAI_API_KEY"));
  if (!o.no_cache)
    co.cache_dir = o.cache_dir.empty() ? api::default_cache_dir(std::getenv("XDG_CACHE_HOME"), std::getenv("HOME"))
                                       : std::filesystem::path(o.cache_dir);
  co.transport.concurrency = o.concurrency;
  co.transport.timeout_s = o.timeout;
  co.transport.retry.max_retries = o.max_retries;
  co.transport.max_response_bytes = static_cast<size_t>(o.max_response_bytes);
  co.transport.max_wait_s = o.max_wait;
  co.transport.rpm = o.rpm;
  co.transport.tpm = o.tpm;
  return co;
}

void add_chat_template_option(CLI::App* cmd, std::string& name, const std::string& help) {
  cmd->add_option("--chat-template", name, help + " (llama2, llama3, chatml, gemma, mistral or plain; default: from the model)");
}

std::optional<serve::ChatTemplate> chat_template_option(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return serve::parse_chat_template(name);
}

void add_chat_options(CLI::App* cmd, ChatCliOptions& o) {
  cmd->add_flag("--chat", o.chat,
                "Run the prompt as the user's message of the model's chat template; only the prompt is attributed");
  cmd->add_option("--system", o.system, "With --chat: a system message before the prompt (never attributed)");
  add_chat_template_option(cmd, o.chat_template, "With --chat: the chat template (implies --chat)");
}

void add_context_cite_options(CLI::App* cmd, ContextCiteCliOptions& o) {
  cmd->add_option("--ablations", o.ablations, "context-cite: random ablations of the prompt's units")->capture_default_str();
  cmd->add_option("--keep-prob", o.keep_prob, "context-cite: probability that an ablation keeps a unit")->capture_default_str();
  cmd->add_option("--lasso-alpha", o.lasso_alpha, "context-cite: Lasso penalty of the surrogate")->capture_default_str();
}

perturbation::ContextCiteOptions context_cite_options(const ContextCiteCliOptions& o, int64_t seed) {
  perturbation::ContextCiteOptions cc;
  cc.ablations = o.ablations;
  cc.keep_prob = o.keep_prob;
  cc.lasso_alpha = o.lasso_alpha;
  cc.seed = static_cast<uint64_t>(seed);
  perturbation::check_context_cite(cc);
  return cc;
}

}  // namespace pizza::app
