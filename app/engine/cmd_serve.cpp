// `pizza serve`: the OpenAI-compatible HTTP server (lib/serve) with graceful shutdown on
// SIGINT/SIGTERM (a second signal exits at once).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include "app/commands.h"
#include "app/common.h"
#include "app/engine/model_options.h"
#include "serve/server.h"
#include "util/error.h"
#include "util/json_writer.h"

namespace pizza::app {

namespace {

// The write end of the shutdown pipe. A signal handler can reach nothing but globals, so this
// is the one piece of global state: set before the handlers are installed, never changed while
// they are.
int g_shutdown_pipe = -1;

extern "C" void on_shutdown_signal(int sig) {
  const char byte = static_cast<char>(sig);  // which signal: a second one exits with 128 + it
  [[maybe_unused]] auto n = ::write(g_shutdown_pipe, &byte, 1);  // async-signal-safe
}

// SIGINT/SIGTERM handlers that only write to a pipe (self-pipe trick), for whichever thread the
// kernel picks: libraries start threads before main() that a signal mask would not cover.
// SIGINT is handled even when the shell started us in the background with it ignored.
class ShutdownSignals {
 public:
  ShutdownSignals() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw InputError("pizza serve: cannot create the shutdown pipe");
    g_shutdown_pipe = fds_[1];
    struct sigaction sa {};
    sa.sa_handler = on_shutdown_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~ShutdownSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_shutdown_pipe = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  // The next signal's number; nullopt when asked to stop first.
  std::optional<int> next(const std::stop_token& st) const {
    while (!st.stop_requested()) {
      pollfd p{fds_[0], POLLIN, 0};
      char sig = 0;
      if (::poll(&p, 1, 200) > 0 && ::read(fds_[0], &sig, 1) == 1) return sig;
    }
    return std::nullopt;
  }

 private:
  int fds_[2] = {-1, -1};
  struct sigaction old_int_ {}, old_term_ {};
};

// A duration option in seconds: positive and finite (fractions allowed, whole milliseconds kept).
std::chrono::milliseconds seconds_option(const char* name, double s) {
  if (!(s > 0) || !(s <= 1e6))
    throw UsageError(std::string(name) + " must be a positive number of seconds (at most 1000000), got " + format_number(s));
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(s * 1000)));
}

}  // namespace

void add_serve_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string host = "127.0.0.1";
    int port = 8000;
    std::string served_model_name;
    std::string chat_template;
    int max_batch = 8;
    int max_queue = 64;
    int max_connections = 256;
    double header_timeout = 10, body_timeout = 60, shutdown_timeout = 30;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = add_engine_subcommand(app, "serve");
  add_model_options(cmd, opts->model);
  cmd->add_option("--host", opts->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", opts->port, "Port to listen on (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--served-model-name", opts->served_model_name, "Model name clients must send (default: the model directory's name)");
  add_chat_template_option(cmd, opts->chat_template, "How chat messages become the prompt");
  cmd->add_option("--max-batch", opts->max_batch, "Most requests run together in one batch")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--max-queue", opts->max_queue, "Most requests waiting beyond the running batch (more: 503 with Retry-After)")
      ->capture_default_str();
  cmd->add_option("--max-connections", opts->max_connections,
                  "Most connections open at once, each with its own thread (more: 503 with Retry-After)")
      ->capture_default_str();
  cmd->add_option("--header-timeout", opts->header_timeout,
                  "Seconds a request's line and headers may take to arrive, in all (then 408)")
      ->capture_default_str();
  cmd->add_option("--body-timeout", opts->body_timeout, "Seconds a request body may take to arrive after its headers (then 408)")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", opts->shutdown_timeout,
                  "Seconds requests in flight get after SIGINT/SIGTERM before their generations are cancelled")
      ->capture_default_str();
  cmd->callback([opts] {
    if (opts->max_queue < 1 || opts->max_queue > 1'000'000)
      throw UsageError("--max-queue must be 1..1000000, got " + std::to_string(opts->max_queue));
    // httplib refuses sockets numbered past select()'s FD_SETSIZE (1024) with a 500, and the
    // default open-file limit is about as low: more connections could not be served anyway.
    if (opts->max_connections < 1 || opts->max_connections > 1000)
      throw UsageError("--max-connections must be 1..1000, got " + std::to_string(opts->max_connections));
    serve::ServeOptions so;
    so.host = opts->host;
    so.port = opts->port;
    so.served_model_name = opts->served_model_name;
    so.max_batch = opts->max_batch;
    so.max_queue = opts->max_queue;
    so.max_connections = static_cast<size_t>(opts->max_connections);
    so.header_timeout = seconds_option("--header-timeout", opts->header_timeout);
    so.body_timeout = seconds_option("--body-timeout", opts->body_timeout);
    so.shutdown_timeout = seconds_option("--shutdown-timeout", opts->shutdown_timeout);
    so.chat_template = chat_template_option(opts->chat_template);

    auto lm = load_model(opts->model);
    serve::Server server(*lm, so);
    ShutdownSignals signals;  // before announcing: a signal right after the line is handled
    std::cerr << "pizza serve: model '" << server.model_name() << "', chat template "
              << serve::chat_template_name(server.chat_template()) << "\n";
    std::cerr << "pizza serve: listening on " << server.url() << std::endl;
    // jthread: on any exit from here its destructor asks the watcher to stop and joins it.
    std::jthread watcher([&](std::stop_token st) {
      if (!signals.next(st)) return;
      std::cerr << "pizza serve: shutting down (finishing requests in flight, for at most " << opts->shutdown_timeout
                << " s; a second signal exits at once)" << std::endl;
      server.stop();
      if (auto sig = signals.next(st)) {
        // The user asked twice: no destructors, no waiting on anything (connections just close).
        std::cerr << "pizza serve: second signal, exiting at once" << std::endl;
        std::_Exit(128 + *sig);
      }
    });
    server.run();
    if (server.shutdown_timed_out())
      std::cerr << "pizza serve: cancelled the requests still in flight after " << opts->shutdown_timeout << " s" << std::endl;
  });
}

}  // namespace pizza::app
