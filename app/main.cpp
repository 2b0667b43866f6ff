// pizza, the front end: runs the subcommands that need no model (tokenize, api, diff, render,
// --help, --version) without libtorch, and hands the others to the engine before it loads
// anything (app/engine_handoff.h), so that neither pays for the other's start-up.
#include "app/cli.h"
#include "app/commands.h"
#include "app/engine_handoff.h"

int main(int argc, char** argv) {
  using namespace pizza::app;
  if (find_engine_command(subcommand_name(argc, argv)) != nullptr) return hand_to_engine(argc, argv);
  Program front;
  front.add_engine_command = add_engine_placeholder;
  try {
    return run_cli(argc, argv, front);
  } catch (const NeedsEngine&) {
    return hand_to_engine(argc, argv);
  }
}
