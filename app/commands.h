// The pizza CLI: one file per subcommand, each registering itself on the root app.
// Subcommand files parse options and wire library calls together; no logic beyond that.
#pragma once

#include <CLI/CLI.hpp>

namespace pizza::app {

void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_doctor_command(CLI::App& app);
void add_local_command(CLI::App& app);
void add_diff_command(CLI::App& app);
void add_render_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_api_command(CLI::App& app);
void add_eval_command(CLI::App& app);

}  // namespace pizza::app
