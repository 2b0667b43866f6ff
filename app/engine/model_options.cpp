#include "app/engine/model_options.h"

#include "attribution/target.h"
#include "util/error.h"
#include "util/utf8.h"

namespace pizza::app {

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

void apply_gradient_options(const GradientCliOptions& o, LocalRequest& req) {
  req.target = o.target;
  req.method_options.norm = o.norm;
  req.method_options.abs = o.abs;
  req.method_options.ig_steps = o.ig_steps;
  req.method_options.baseline = o.baseline == "pad" ? Baseline::pad : Baseline::zero;
  req.aggregate = parse_aggregate(o.aggregate);
  if (!req.target.empty()) find_target(req.target);
}

std::optional<ChatOptions> chat_options(const ChatCliOptions& o) {
  const bool chat = o.chat || !o.chat_template.empty();
  if (!chat) {
    if (o.system) throw UsageError("--system needs --chat (the system message is part of the chat template)");
    return std::nullopt;
  }
  ChatOptions c;
  c.chat_template = chat_template_option(o.chat_template);
  c.system = o.system;
  if (c.system) require_utf8(*c.system, "--system");
  return c;
}

}  // namespace pizza::app
