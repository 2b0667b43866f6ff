// Standard input, read whole at most once per process.
//
// A pipe can be read only once, yet the front end may read a prompt (or a batch's records)
// from it and only then find that the run needs the engine (pizza api --embeddings in a
// record). Every reader in pizza goes through here, so the bytes stay available and the front
// end hands exactly them to the engine (app/engine_handoff.h). Process-wide state on purpose:
// standard input itself is process-wide.
#pragma once

#include <string>

namespace pizza {

// All of standard input; read on the first call, the same bytes on every later one.
// InputError naming `what` (e.g. "the prompt") when reading fails.
const std::string& standard_input(const std::string& what);

// Whether standard_input() has read standard input in this process.
bool standard_input_read();

}  // namespace pizza
