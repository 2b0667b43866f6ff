// pizza-engine: every subcommand, with libtorch. pizza (app/main.cpp) starts it for the
// subcommands that compute with a model, with OpenBLAS's kernel already chosen; run by hand,
// it chooses the kernel itself by re-exec'ing once.
#include <cstdio>

#include "app/cli.h"
#include "app/commands.h"
#include "app/engine/embeddings.h"
#include "app/engine_handoff.h"
#include "blas/blas.h"

namespace {

using namespace pizza::app;

void add_engine_command(CLI::App& app, const EngineCommand& command) {
  if (command.name == "generate") add_generate_command(app);
  if (command.name == "local") add_local_command(app);
  if (command.name == "serve") add_serve_command(app);
  if (command.name == "eval") add_eval_command(app);
  if (command.name == "doctor") add_doctor_command(app);
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything touches BLAS. When pizza started this program, its environment already
  // carries the choice and this only runs the kernel's self-check.
  pizza::blas::maybe_reexec_with_best_core(argc, argv);
  Program engine;
  engine.engine = true;
  engine.add_engine_command = add_engine_command;
  engine.embeddings = std::make_shared<ModelEmbeddings>();
  try {
    return run_cli(argc, argv, engine);
  } catch (const NeedsEngine& e) {
    // Only the front end's placeholders throw it, and the engine has none.
    std::fprintf(stderr, "pizza: error: internal: %s needs the engine inside the engine\n", e.why.c_str());
    return 1;
  }
}
