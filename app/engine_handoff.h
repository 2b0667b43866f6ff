// Handing a command line from the front end (pizza, which links no libtorch) to the engine
// (pizza-engine, which does). The engine is a program, not a library the front end loads: it
// starts with OpenBLAS's kernel already chosen in its environment (no re-exec), and the two
// share no static state across a dlopen boundary.
#pragma once

#include <string>
#include <string_view>

namespace pizza::app {

// The engine's file name, found like pizza's modules (util/shared_library.h).
inline constexpr std::string_view kEngineProgram = "pizza-engine";

// Thrown by front-end code that finds, once the options are parsed, that the run needs the
// engine (pizza api with --embeddings). Not a std::exception, so that no error handler turns it
// into a message: it reaches the front end's main, which hands the whole command line over.
struct NeedsEngine {
  std::string why;  // e.g. "--embeddings"
};

// The subcommand a command line names: its first argument that is not an option (skipping the
// value of a separate --config FILE); empty when there is none.
std::string_view subcommand_name(int argc, char** argv);

// Replaces this process with the engine running the same command line: sets the BLAS start
// plan in the environment (blas::start_plan), gives the engine the same standard input when the
// front end has already read it, and executes pizza-engine. Returns only when that fails: exit
// status 1 after a one-line error.
int hand_to_engine(int argc, char** argv);

}  // namespace pizza::app
