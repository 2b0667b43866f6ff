// The root of pizza's command line, shared by its two programs: the subcommands in one order,
// --config and --version, and the mapping of errors to exit codes (0 ok, 1 runtime or input
// error, 2 usage error). No exception escapes run_cli except NeedsEngine
// (app/engine_handoff.h).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>

#include "app/commands.h"
#include "app/embeddings.h"

namespace pizza::app {

struct Program {
  // Whether this is the engine (every subcommand runs here) or the front end (the engine's
  // subcommands are placeholders, and their config sections are left to the engine).
  bool engine = false;
  // Adds one of the engine's subcommands: for real in the engine, add_engine_placeholder in
  // the front end.
  std::function<void(CLI::App&, const EngineCommand&)> add_engine_command;
  // pizza api's --embeddings loader; nullptr in the front end.
  std::shared_ptr<EmbeddingLoader> embeddings;
};

// A subcommand that appears in --help and, if it is ever run, throws NeedsEngine.
void add_engine_placeholder(CLI::App& app, const EngineCommand& command);

int run_cli(int argc, char** argv, const Program& program);

}  // namespace pizza::app
