// The pizza CLI: one file per subcommand, each registering itself on the root app.
// Subcommand files parse options and wire library calls together; no logic beyond that.
//
// Two programs share these files. `pizza` (the front end, app/*.cpp) links no libtorch and
// runs the subcommands that need no model; `pizza-engine` (app/engine/*.cpp, linking
// libtorch) runs every subcommand, and the front end hands it the ones that compute with a
// model (app/engine_handoff.h).
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <memory>
#include <string_view>

#include "app/embeddings.h"

namespace pizza::app {

// The front end's subcommands.
void add_tokenize_command(CLI::App& app);
void add_diff_command(CLI::App& app);
void add_render_command(CLI::App& app);
// `embeddings` loads --embeddings models; nullptr in the front end, which hands runs that name
// one to the engine.
void add_api_command(CLI::App& app, std::shared_ptr<EmbeddingLoader> embeddings);

// The subcommands that compute with a model: only the engine has them. The front end knows
// their names and descriptions (for its --help) and hands them over.
struct EngineCommand {
  std::string_view name, description;
};
inline constexpr std::array<EngineCommand, 5> kEngineCommands = {{
    {"generate", "Greedy generation: print the continuation of a prompt"},
    {"local", "Attribute a local model's output to its prompt (gradients or perturbation)"},
    {"serve", "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, /v1/models)"},
    {"eval", "Measure how faithful attribution methods are (deletion, insertion, ABPC, top-k, LDS)"},
    {"doctor", "Report the BLAS library, its kernel and the machine"},
}};
// The engine command called `name`; nullptr for any other name.
const EngineCommand* find_engine_command(std::string_view name);
// Adds the engine command `name` to `app` with its description from kEngineCommands.
CLI::App* add_engine_subcommand(CLI::App& app, std::string_view name);

// The engine's subcommands (app/engine/), each adding itself as kEngineCommands describes it.
void add_generate_command(CLI::App& app);
void add_local_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_doctor_command(CLI::App& app);

}  // namespace pizza::app
