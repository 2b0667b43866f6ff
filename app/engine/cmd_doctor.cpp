// `pizza doctor`: what pizza runs on (BLAS library and kernel, threads, devices).
#include <iostream>

#include "app/commands.h"
#include "blas/blas.h"

namespace pizza::app {

void add_doctor_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("doctor", "Report the BLAS library, its kernel and the machine");
  cmd->callback([] { std::cout << blas::doctor_report(); });
}

}  // namespace pizza::app
