#include "app/engine_handoff.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>

#include "blas/blas.h"
#include "util/error.h"
#include "util/shared_library.h"
#include "util/standard_input.h"

namespace pizza::app {

namespace {

// Standard input as the front end read it, again on descriptor 0: an anonymous memory file
// (kept open across exec) that the engine reads from the start.
void replay_standard_input() {
  const std::string& bytes = standard_input("standard input");
  const auto fail = [] { return InputError(std::string("cannot keep standard input for the engine: ") + std::strerror(errno)); };
  const int fd = ::memfd_create("pizza-stdin", 0);
  if (fd < 0) throw fail();
  // Closed however this ends; descriptor 0 keeps the file open for the engine.
  const std::unique_ptr<const int, void (*)(const int*)> closer(&fd, [](const int* f) { ::close(*f); });
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw fail();
    done += static_cast<size_t>(n);
  }
  if (::lseek(fd, 0, SEEK_SET) != 0 || ::dup2(fd, STDIN_FILENO) < 0) throw fail();
}

}  // namespace

std::string_view subcommand_name(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") return {};
    if (a == "--config") {
      ++i;  // its value
      continue;
    }
    if (!a.empty() && a[0] != '-') return a;
  }
  return {};
}

int hand_to_engine(int argc, char** argv) {
  const std::string_view sub = subcommand_name(argc, argv);
  try {
    std::filesystem::path engine;
    try {
      engine = find_module(kEngineProgram);
    } catch (const InputError& e) {
      throw InputError("pizza " + std::string(sub) + " computes with a model in pizza's engine, which is missing: " + e.what());
    }
    if (auto plan = blas::start_plan())
      for (const auto& [name, value] : *plan) ::setenv(name.c_str(), value.c_str(), 1);
    if (standard_input_read()) replay_standard_input();
    std::fflush(nullptr);
    std::cout.flush();
    ::execv(engine.c_str(), argv);
    throw InputError("cannot start pizza's engine " + engine.string() + ": " + std::strerror(errno));
  } catch (const std::exception& e) {
    std::cerr << "pizza: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pizza::app
