// `pizza local`: white-box attribution on a local checkpoint.
#include <chrono>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "engine/local.h"
#include "report/report.h"
#include "util/error.h"
#include "util/progress.h"

namespace pizza::app {

void add_local_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string prompt, target_text, method = "saliency", target = "prob", norm = "l1", baseline = "zero";
    std::string algorithm = "fast", unit = "token", aggregate = "sum", normalize = "none";
    std::string spans, unit_regex;
    std::string format, output, color = "auto";
    int64_t max_new_tokens = 16, max_batch = 16;
    int ig_steps = 32;
    bool abs = false, skip_special = false, quiet = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("local", "Attribute a local model's output to its prompt (gradients)");
  add_model_options(cmd, o->model);
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text ('-' reads standard input)")->required();
  cmd->add_option("--max-new-tokens,-n", o->max_new_tokens, "Tokens to generate greedily")->capture_default_str();
  cmd->add_option("--target-text", o->target_text, "Attribute this continuation instead of generating (teacher forcing)");
  cmd->add_option("--method", o->method, "saliency, input-x-gradient or integrated-gradients")->capture_default_str();
  cmd->add_option("--target", o->target, "prob, logprob, logit or pizza-legacy")->capture_default_str();
  cmd->add_option("--norm", o->norm, "Saliency norm over the hidden dimension: l1 or l2")
      ->check(CLI::IsMember({"l1", "l2"}))->capture_default_str();
  cmd->add_flag("--abs", o->abs, "Magnitudes of signed methods");
  cmd->add_option("--ig-steps", o->ig_steps, "Integrated-gradients steps")->capture_default_str();
  cmd->add_option("--ig-baseline", o->baseline, "Integrated-gradients baseline: zero or pad")
      ->check(CLI::IsMember({"zero", "pad"}))->capture_default_str();
  cmd->add_option("--algorithm", o->algorithm, "fast (batched) or reference (PIZZA's per-step loop)")
      ->check(CLI::IsMember({"fast", "reference"}))->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Sequence copies per forward/backward pass")->capture_default_str();
  cmd->add_option("--unit", o->unit, "Input units: token, word or sentence")->capture_default_str();
  cmd->add_option("--spans", o->spans, "Custom units as byte spans of the prompt: a:b,c:d");
  cmd->add_option("--unit-regex", o->unit_regex, "Custom units: each regex match is a unit");
  cmd->add_option("--aggregate", o->aggregate, "Token scores into units: sum, mean, max or absmax")->capture_default_str();
  cmd->add_flag("--skip-special-tokens", o->skip_special, "Hide BOS and other special tokens");
  cmd->add_option("--normalize", o->normalize, "none, row-max or row-sum")->capture_default_str();
  cmd->add_option("--format,-f", o->format, "table, csv, json or html (default: from --output, else table)");
  cmd->add_option("--output,-o", o->output, "Write to this file (atomically) instead of stdout");
  cmd->add_option("--color", o->color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "No progress bar");

  cmd->callback([o] {
    LocalRequest req;
    req.prompt = read_prompt(o->prompt);
    if (!o->target_text.empty()) req.target_text = o->target_text;
    req.max_new_tokens = o->max_new_tokens;
    req.method = o->method;
    req.target = o->target;
    req.method_options.norm = o->norm;
    req.method_options.abs = o->abs;
    req.method_options.ig_steps = o->ig_steps;
    req.method_options.baseline = o->baseline == "pad" ? Baseline::pad : Baseline::zero;
    req.algorithm = o->algorithm == "reference" ? GradientAlgorithm::reference : GradientAlgorithm::fast;
    req.max_batch = o->max_batch;
    req.unit = parse_unit_options(o->unit, o->spans, o->unit_regex);
    req.aggregate = parse_aggregate(o->aggregate);
    req.skip_special = o->skip_special;
    req.normalize = parse_normalize(o->normalize);
    // Validate names before the (slow) model load.
    if (!find_gradient_method(req.method))
      throw UsageError("--method: unknown value '" + req.method + "' (expected saliency, input-x-gradient or integrated-gradients)");
    find_target(req.target);
    auto format = output_format(o->format, o->output);

    const auto t0 = std::chrono::steady_clock::now();
    auto lm = load_model(o->model);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ProgressBar bar("attributing", !o->quiet);
    req.progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
    auto result = run_local_gradient(*lm, req);
    bar.finish();
    result.model_path = o->model.model;
    result.timings.load_ms = load_ms;
    write_result(result, format, o->output, o->color);
  });
}

}  // namespace pizza::app
