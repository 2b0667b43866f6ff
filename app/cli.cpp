#include <array>
#include <cctype>
#include <new>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/cli.h"

#include "app/batch.h"
#include "app/commands.h"
#include "app/common.h"
#include "app/engine_handoff.h"
#include "blas/blas.h"
#include "util/error.h"

namespace pizza::app {
namespace {

// First line only: libtorch errors carry multi-line backtraces a user should not see.
std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// A clearer message than CLI11's for two mistakes it reports late or vaguely: an unknown
// subcommand (CLI11: "A subcommand is required") and an unknown --option when a required one is
// also missing (CLI11 names the missing one first). Empty when neither applies.
std::string misuse(CLI::App& app, int argc, char** argv) {
  if (argc < 2) return {};
  const std::string first = argv[1];
  CLI::App* sub = nullptr;
  for (CLI::App* s : app.get_subcommands({})) {
    if (s->check_name(first)) sub = s;
  }
  if (!sub) {
    if (first.empty() || first[0] == '-') return {};
    std::string names;
    for (CLI::App* s : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + s->get_name();
    return "unknown subcommand '" + first + "' (expected " + names + ")";
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    const std::string name = a.substr(0, a.find('='));
    if (!sub->get_option_no_throw(name) && !app.get_option_no_throw(name))
      return "unknown option " + name + " for pizza " + sub->get_name() + " (see pizza " + sub->get_name() + " --help)";
  }
  return {};
}

// CLI11's message for a config key no option takes, "INI was not able to parse local.bogus",
// as "[local] bogus: unknown key ...". Other messages unchanged.
std::string config_message(const std::string& what) {
  const std::string prefix = "INI was not able to parse ";
  if (what.rfind(prefix, 0) != 0) return what;
  const std::string item = what.substr(prefix.size());
  const size_t dot = item.rfind('.');
  if (dot == std::string::npos) return "unknown key '" + item + "' outside any [subcommand] section";
  const std::string section = item.substr(0, dot);
  return "[" + section + "] " + item.substr(dot + 1) + ": unknown key (not an option of pizza " + section +
         "; see pizza " + section + " --help)";
}

// "--config FILE: " when `message` is about an option whose value came from the config file
// (the command line does not name it), so that a bad value in a file is looked for there.
std::string config_origin(CLI::App& app, int argc, char** argv, const std::string& message) {
  const CLI::Option* config = app.get_config_ptr();
  if (config == nullptr || config->count() == 0) return {};
  const size_t at = message.find("--");
  if (at == std::string::npos) return {};
  size_t end = at + 2;
  while (end < message.size() && (std::isalnum(static_cast<unsigned char>(message[end])) || message[end] == '-')) ++end;
  const std::string name = message.substr(at, end - at);
  const CLI::Option* opt = nullptr;
  for (CLI::App* sub : app.get_subcommands())
    if ((opt = sub->get_option_no_throw(name)) != nullptr) break;
  if (opt == nullptr) return {};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const std::string flag = a.substr(0, a.find('='));
    if (opt->check_name(flag)) return {};
    // -n8 (a short name with its value attached)
    if (flag[1] != '-' && opt->check_name(flag.substr(0, 2))) return {};
  }
  return "--config " + config->as<std::string>() + ": ";
}

// The subcommands in --help's order.
constexpr std::array<std::string_view, 9> kCommandOrder = {"generate", "tokenize", "local", "serve", "api",
                                                           "eval", "diff", "render", "doctor"};

}  // namespace

const EngineCommand* find_engine_command(std::string_view name) {
  for (const EngineCommand& c : kEngineCommands)
    if (c.name == name) return &c;
  return nullptr;
}

CLI::App* add_engine_subcommand(CLI::App& app, std::string_view name) {
  const EngineCommand* c = find_engine_command(name);
  if (c == nullptr) throw std::logic_error("no engine command " + std::string(name));
  return app.add_subcommand(std::string(c->name), std::string(c->description));
}

void add_engine_placeholder(CLI::App& app, const EngineCommand& command) {
  auto* sub = add_engine_subcommand(app, command.name);
  // Everything after the name belongs to the engine's parser.
  sub->prefix_command();
  sub->callback([name = std::string(command.name)] { throw NeedsEngine{name}; });
}

int run_cli(int argc, char** argv, const Program& program) {
  // Logs (retries, warnings) go to stderr: stdout carries results only.
  spdlog::set_default_logger(spdlog::stderr_color_mt("pizza"));

  CLI::App app{"pizza: attribute what a language model generates to the tokens of its prompt"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return blas::version_string(); });
  std::vector<std::string> engine_sections;
  if (!program.engine) {
    for (const EngineCommand& c : kEngineCommands) engine_sections.emplace_back(c.name);
  }
  add_config_option(app, engine_sections);  // before the subcommands, which inherit its fallthrough
  hide_former_names(app);  // and its help formatter
  for (std::string_view name : kCommandOrder) {
    if (const EngineCommand* c = find_engine_command(name)) {
      program.add_engine_command(app, *c);
    } else if (name == "tokenize") {
      add_tokenize_command(app);
    } else if (name == "api") {
      add_api_command(app, program.embeddings);
    } else if (name == "diff") {
      add_diff_command(app);
    } else if (name == "render") {
      add_render_command(app);
    }
  }
  document_config_option(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ConfigError& e) {
    std::cerr << "pizza: error: --config " << app.get_config_ptr()->as<std::string>() << ": " << config_message(e.what())
              << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    const std::string clearer = misuse(app, argc, argv);
    std::cerr << "pizza: error: "
              << (clearer.empty() ? config_origin(app, argc, argv, e.what()) + e.what() : clearer) << "\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "pizza: error: " << config_origin(app, argc, argv, e.what()) << e.what() << "\n";
    return 2;
  } catch (const InputError& e) {
    std::cerr << "pizza: error: " << first_line(e.what()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    // Loaders name their file (util/error.h's reading()); this is the computation itself.
    std::cerr << "pizza: error: out of memory: the run needs more memory than this machine has "
                 "(fewer or shorter prompts, fewer output tokens or a smaller --max-batch need less)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pizza: error: " << first_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace pizza::app
