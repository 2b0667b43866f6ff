// A child process for tests that need one running beside them (a server, a proxy, a run to be
// killed midway): spawned without a shell, stdout discarded, stderr drained by a thread into a
// buffer the test can wait on (so a chatty child never blocks on a full pipe). Killed with
// SIGKILL (if still running) and reaped on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace pizza::test {

class Subprocess {
 public:
  // argv[0] is the executable's path.
  explicit Subprocess(std::vector<std::string> argv);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Waits until what the child wrote on stderr matches `pattern` (or stderr closes, or the
  // timeout passes); returns all of stderr so far.
  std::string read_until(const std::regex& pattern, std::chrono::milliseconds timeout);
  // All of stderr once the child has closed it (or the timeout passes).
  std::string read_to_end(std::chrono::milliseconds timeout);
  // All of stderr so far.
  std::string err() const;

  // Sends `signal` (no-op once reaped).
  void kill(int signal);
  // Waits for exit; returns the exit status, or 128 + signal number.
  int wait();
  // Whether the child has exited (reaps it if so).
  bool exited();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  int err_fd_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string err_;
  bool err_closed_ = false;
  std::thread reader_;
};

// Starts `argv` (a server that prints "listening on http://127.0.0.1:PORT" on stderr when ready,
// as `pizza serve` and pizza_fault_proxy do) and REQUIREs that line within `timeout`. The port
// is the one announced. Killed on destruction (see Subprocess).
class ListeningProcess {
 public:
  explicit ListeningProcess(std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(120));
  int port() const { return port_; }
  // http://127.0.0.1:PORT
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Subprocess& process() { return process_; }

 private:
  Subprocess process_;
  int port_ = 0;
};

// The built `pizza serve --port 0` on stories260K, with `options` (e.g. {"--max-batch", "1"}).
class PizzaServe : public ListeningProcess {
 public:
  explicit PizzaServe(const std::vector<std::string>& options = {});
  // http://127.0.0.1:PORT/v1
  std::string base_url() const { return origin() + "/v1"; }
};

}  // namespace pizza::test
