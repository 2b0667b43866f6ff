// `pizza doctor`: what pizza runs on (BLAS library and kernel, threads, devices).
#include <iostream>

#include "app/commands.h"
#include "blas/blas.h"

namespace pizza::app {

void add_doctor_command(CLI::App& app) {
  auto* cmd = add_engine_subcommand(app, "doctor");
  cmd->callback([] { std::cout << blas::doctor_report(); });
}

}  // namespace pizza::app
