// Options shared by the subcommands that load a model, and small CLI helpers.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "model/model.h"

namespace pizza::app {

struct ModelOptions {
  std::string model;
  std::string tokenizer;
  RuntimeOptions runtime;
};

void add_model_options(CLI::App* cmd, ModelOptions& opts);

// Loads the model named by --model (and --tokenizer) with the runtime options.
std::unique_ptr<LanguageModel> load_model(const ModelOptions& opts);

// --prompt TEXT, or '-' for standard input (read whole, as bytes).
std::string read_prompt(const std::string& arg);

}  // namespace pizza::app
