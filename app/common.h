// Options shared by the subcommands, and small CLI helpers. Torch-free: the front end (pizza
// itself) compiles it; what needs the engine is in app/engine/model_options.h.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "api/client.h"
#include "hub/hub.h"
#include "model/runtime_options.h"
#include "openai/chat_template.h"
#include "perturbation/engine.h"
#include "perturbation/perturb.h"
#include "report/report.h"
#include "units/units.h"

namespace pizza::app {

struct ModelOptions {
  std::string model;
  std::string tokenizer;
  std::string tokenizer_dir;  // where tiktoken rank files live (with --tokenizer NAME)
  std::string hf_token_file;
  bool offline = false;
  bool no_download = false;
  RuntimeOptions runtime;
};

// Tokens to generate, one spelling and one default for every subcommand: --max-new-tokens / -n
// (api's former --max-tokens stays as a second name, also as a TOML key). `help` says what the
// tokens are for.
inline constexpr int64_t kDefaultMaxNewTokens = 16;
void add_max_new_tokens_option(CLI::App* cmd, int64_t& value, const std::string& help);

// Alternatives per generated token, one spelling for every subcommand: --top-logprobs
// (OpenAI's name; pizza local's former --top-k stays as a hidden second name). A server takes
// at most kMaxApiTopLogprobs; a local model is bounded by kMaxTopLogprobs.
inline constexpr int kDefaultTopLogprobs = 20;
inline constexpr int kMaxApiTopLogprobs = 20;
inline constexpr int kMaxTopLogprobs = 1000;
void add_top_logprobs_option(CLI::App* cmd, int& value, const std::string& help);

// --skip-special-tokens: BOS and other special tokens left out of what the command shows
// (tokenize's former --no-special-tokens stays as a hidden second name).
void add_skip_special_tokens_option(CLI::App* cmd, bool& value, const std::string& help);

// Former option names that still work but are left out of --help (the one vocabulary is the
// other names). Call on the root app before adding subcommands: they inherit its formatter.
void hide_former_names(CLI::App& app);

void add_model_options(CLI::App* cmd, ModelOptions& opts);

// --max-memory SIZE (512M, 2G, 1.5GiB, bytes) of the commands that run local gradient or
// perturbation batches: one definition for pizza local and pizza eval. max_memory_option parses
// it (nullopt when not given: the default budget); UsageError naming the option for bad sizes.
void add_max_memory_option(CLI::App* cmd, std::string& value);
std::optional<int64_t> max_memory_option(const std::string& value);
// Only where the model and tokenizer come from (--model, --tokenizer, --tokenizer-dir and the
// Hugging Face options), for commands that run no model.
void add_model_source_options(CLI::App* cmd, ModelOptions& opts, bool model_required);

// --model as a local path, or a Hugging Face repo id resolved in (or downloaded into) the cache.
// Need::tokenizer resolves (and downloads) only the tokenizer files of a repo.
std::filesystem::path resolve_model_path(const ModelOptions& opts, hub::Need need = hub::Need::model);

// --tokenizer (a file or directory, or a tiktoken encoding name looked up in --tokenizer-dir),
// else the tokenizer of --model. Empty when neither is given.
std::unique_ptr<Tokenizer> load_tokenizer_option(const ModelOptions& opts);

// --prompt TEXT, or '-' for standard input (read whole, as bytes).
std::string read_prompt(const std::string& arg);
// The prompt of an attribution: UsageError when it is empty (no unit to attribute to, for any
// method). Returns it.
std::string require_prompt(std::string prompt);

// --unit / --spans / --unit-regex: which input units the matrix's columns are.
struct UnitCliOptions {
  std::string unit = "token", spans, regex;
};
// `unit_help` says which kinds the command takes (an API needs a tokenizer for tokens).
void add_unit_options(CLI::App* cmd, UnitCliOptions& o, const std::string& unit_help);
// One spec (custom spans and regex override --unit); UsageError for bad values.
UnitSpec parse_unit_options(const UnitCliOptions& o);

// --strategy / --replacement / --nth: how a perturbation removes a unit.
struct StrategyCliOptions {
  std::string strategy = "delete", replacement;
  int64_t nth = 1;
};
// (pizza api's former --perturbation stays as a hidden second name of --strategy.)
void add_strategy_options(CLI::App* cmd, StrategyCliOptions& o);
// UsageError for an unknown strategy or fixed without --replacement.
perturbation::StrategySpec strategy_spec(const StrategyCliOptions& o);

// Gradient methods' options: --target, --norm, --abs, --ig-steps, --ig-baseline, --aggregate.
struct GradientCliOptions {
  std::string target;  // empty: each method's own (prob; logit for attnlrp and cp-lrp)
  std::string norm = "l1", baseline = "pad", aggregate = "sum";
  int ig_steps = 32;
  bool abs = false;
};
void add_gradient_options(CLI::App* cmd, GradientCliOptions& o);

// --chat-template NAME (llama2, llama3, chatml, gemma, mistral, plain): pizza serve's, and
// pizza local's with --chat. The one definition of the option, so both spell it alike.
void add_chat_template_option(CLI::App* cmd, std::string& name, const std::string& help);
// The template named by --chat-template; nullopt when empty (the model's own). UsageError for
// an unknown name.
std::optional<serve::ChatTemplate> chat_template_option(const std::string& name);

// --chat, --system, --chat-template of pizza local: the prompt as the user's message of the
// model's chat template.
struct ChatCliOptions {
  bool chat = false;
  std::optional<std::string> system;
  std::string chat_template;
};
void add_chat_options(CLI::App* cmd, ChatCliOptions& o);

// --format, else the --output file's extension, else table. UsageError for unknown names;
// InputError when --output cannot be written (checked here, before any work).
std::optional<report::Format> output_format(const std::string& format, const std::string& output);

// -f/--format FORMAT and -o/--output FILE, the one spelling of both in every subcommand that
// writes something. `formats` is the help's list of names ("table or json").
void add_format_output_options(CLI::App* cmd, std::string& format, std::string& output, const std::string& formats);

// The format named by the --output file's extension (".json" -> "json") when it is one of
// `known`, else known's first (the default).
std::string text_format(const std::string& output, std::initializer_list<std::string_view> known);

// Writes a command's whole text to stdout (output empty) or to the file atomically; InputError
// when it cannot.
void write_output(const std::string& text, const std::string& output);

// --format, --output, --color, --quiet: how every attribution command writes its result.
void add_output_options(CLI::App* cmd, std::string& format, std::string& output, std::string& color, bool& quiet);

// --init-chunk-size, --stride, --static-threshold, --max-depth of hierarchical perturbation.
void add_hierarchical_options(CLI::App* cmd, std::optional<size_t>& init_chunk_size, std::optional<size_t>& stride,
                              std::optional<double>& static_threshold, std::optional<int>& max_depth);

// Where an OpenAI-compatible server is and how pizza talks to it: the options every command
// that sends requests shares (pizza api, pizza eval --base-url).
struct ApiClientCliOptions {
  std::string base_url, api_key_file, cache_dir;
  int concurrency = 8, max_retries = 5;
  double timeout = 120, rpm = 0, tpm = 0, max_wait = 600;
  int64_t max_response_bytes = int64_t{64} << 20;
  bool no_cache = false;
};
void add_api_client_options(CLI::App* cmd, ApiClientCliOptions& o);
// UsageError for a value out of range (before any request).
void check_api_client_options(const ApiClientCliOptions& o);
// The client's options: base URL and key from the options or the environment (OPENAI_BASE_URL,
// OPENAI_API_KEY), the cache directory (default $XDG_CACHE_HOME/pizza/api) unless --no-cache.
api::ClientOptions api_client_options(const ApiClientCliOptions& o);

// --ablations, --keep-prob, --lasso-alpha of --method context-cite (the seed is each command's
// --seed).
struct ContextCiteCliOptions {
  size_t ablations = 64;
  double keep_prob = 0.5;
  double lasso_alpha = 0.01;
};
void add_context_cite_options(CLI::App* cmd, ContextCiteCliOptions& o);
// The engine's options, checked (UsageError for values a fit cannot use).
perturbation::ContextCiteOptions context_cite_options(const ContextCiteCliOptions& o, int64_t seed);

// --color auto|always|never (already checked by the option's validator).
report::ColorMode color_mode(const std::string& color);

// Writes a result to stdout or --output (atomically) with --color auto|always|never.
void write_result(const AttributionResult& result, std::optional<report::Format> format, const std::string& output,
                  const std::string& color);

}  // namespace pizza::app
