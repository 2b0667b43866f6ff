#include "app/common.h"

#include <cmath>
#include <iostream>
#include <iterator>

#include "hub/hub.h"
#include "util/error.h"
#include "util/file.h"
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

void add_model_options(CLI::App* cmd, ModelOptions& opts) {
  add_model_source_options(cmd, opts, true);
  cmd->add_option("--threads", opts.runtime.threads, "CPU threads (default: all cores this process may use)");
  cmd->add_option("--device", opts.runtime.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", opts.runtime.dtype, "float32, float64 or bfloat16")->capture_default_str();
}

std::filesystem::path resolve_model_path(const ModelOptions& opts, hub::Need need) {
  hub::HubOptions ho;
  ho.need = need;
  if (!opts.hf_token_file.empty()) ho.token_file = opts.hf_token_file;
  if (opts.offline) ho.offline = true;
  ho.allow_download = !opts.no_download;
  return hub::resolve_model(opts.model, ho);
}

std::unique_ptr<LanguageModel> load_model(const ModelOptions& opts) {
  auto rt = apply_runtime(opts.runtime);
  auto path = resolve_model_path(opts);
  std::optional<std::filesystem::path> tok;
  if (!opts.tokenizer.empty()) {
    // A tiktoken encoding name is looked up in --tokenizer-dir.
    tok = opts.tokenizer_dir.empty() ? std::filesystem::path(opts.tokenizer)
                                     : std::filesystem::path(opts.tokenizer_dir) / (opts.tokenizer + ".tiktoken");
  }
  return LanguageModel::load(path, rt, tok);
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
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) throw InputError("cannot read the prompt from standard input");
  require_utf8(text, "--prompt - (standard input)");
  return text;
}

UnitSpec parse_unit_options(const std::string& unit, const std::string& spans, const std::string& regex) {
  if (!spans.empty() && !regex.empty()) throw UsageError("--spans and --unit-regex cannot be combined");
  UnitSpec spec;
  if (!spans.empty()) {
    spec.kind = UnitKind::spans;
    spec.spans = parse_spans(spans);
  } else if (!regex.empty()) {
    spec.kind = UnitKind::regex;
    spec.regex = regex;
  } else {
    spec.kind = parse_unit_kind(unit);
  }
  return spec;
}

std::optional<report::Format> output_format(const std::string& format, const std::string& output) {
  // Called before any work: a run must not compute for minutes and then fail to write.
  if (!output.empty()) check_writable(output);
  if (!format.empty()) return report::parse_format(format);
  if (!output.empty()) return report::format_from_extension(output);
  return std::nullopt;
}

void add_output_options(CLI::App* cmd, std::string& format, std::string& output, std::string& color, bool& quiet) {
  cmd->add_option("--format,-f", format, "table, csv, json or html (default: from --output, else table)");
  cmd->add_option("--output,-o", output, "Write to this file (atomically) instead of stdout");
  cmd->add_option("--color", color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", quiet, "No progress bar");
}

void add_hierarchical_options(CLI::App* cmd, std::optional<size_t>& init_chunk_size, std::optional<size_t>& stride,
                              std::optional<double>& static_threshold, std::optional<int>& max_depth) {
  cmd->add_option("--init-chunk-size", init_chunk_size, "Hierarchical: first chunk size in units (default max(2, units/2))");
  cmd->add_option("--stride", stride, "Hierarchical: first chunks' stride (default chunk/2)");
  // Finite: it is compared with scores and recorded among the result's JSON parameters.
  const CLI::Validator finite(
      [](std::string& s) {
        double v = 0;
        return CLI::detail::lexical_cast(s, v) && std::isfinite(v) ? std::string() : "must be a finite number, got " + s;
      },
      "NUMBER");
  cmd->add_option("--static-threshold", static_threshold, "Hierarchical: also split chunks scoring above this")
      ->check(finite);
  cmd->add_option("--max-depth", max_depth, "Hierarchical: deepest split level (default: until nothing splits)");
}

void write_result(const AttributionResult& result, std::optional<report::Format> format, const std::string& output,
                  const std::string& color) {
  auto mode = color == "always" ? report::ColorMode::always : color == "never" ? report::ColorMode::never : report::ColorMode::auto_;
  report::write(result, format, output, report::detect_render_options(mode));
}

}  // namespace pizza::app
