// `pizza generate`: greedy continuation of a prompt.
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "app/engine/model_options.h"
#include "model/generate.h"
#include "util/error.h"

namespace pizza::app {

void add_generate_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string prompt;
    int64_t max_new_tokens = kDefaultMaxNewTokens;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = add_engine_subcommand(app, "generate");
  add_model_options(cmd, opts->model);
  cmd->add_option("--prompt,-p", opts->prompt, "Prompt text ('-' reads standard input)")->required();
  add_max_new_tokens_option(cmd, opts->max_new_tokens, "Tokens to generate");
  cmd->callback([opts] {
    if (opts->max_new_tokens <= 0)
      throw UsageError("--max-new-tokens must be positive, got " + std::to_string(opts->max_new_tokens));
    auto prompt = read_prompt(opts->prompt);
    auto lm = load_model(opts->model);
    auto ids32 = lm->tokenizer().encode(prompt).ids();
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    GenerateOptions go;
    go.max_new_tokens = opts->max_new_tokens;
    go.stop_ids = lm->stop_ids();
    auto gen = greedy_generate(lm->model(), {ids}, go).at(0);
    std::cout << decode_continuation(lm->tokenizer(), ids, gen.tokens) << "\n";
  });
}

}  // namespace pizza::app
