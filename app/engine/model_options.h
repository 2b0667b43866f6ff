// What the engine's subcommands (local, generate, serve, eval) do with the shared options that
// needs libtorch: loading the model, and filling the gradient and chat parts of a request.
// The options themselves are declared torch-free in app/common.h.
#pragma once

#include <memory>
#include <optional>

#include "app/common.h"
#include "engine/chat.h"
#include "engine/local.h"
#include "model/model.h"

namespace pizza::app {

// Loads the model named by --model (and --tokenizer) with the runtime options.
std::unique_ptr<LanguageModel> load_model(const ModelOptions& opts);

// Copies the gradient options into a request (target, method options, aggregate); UsageError
// for bad values.
void apply_gradient_options(const GradientCliOptions& o, LocalRequest& req);

// nullopt without --chat (or --chat-template, which implies it); UsageError for --system
// without either, or an unknown template.
std::optional<ChatOptions> chat_options(const ChatCliOptions& o);

}  // namespace pizza::app
