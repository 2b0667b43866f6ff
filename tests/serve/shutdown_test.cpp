// `pizza serve` as a user runs it: the built binary prints its address when ready, answers,
// and on SIGTERM finishes the request in flight and exits 0.
#include <torch/torch.h>  // before Catch: see serve_support.h

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <regex>

#include "serve_support.h"

extern char** environ;

namespace {

// A child process with its stderr on a pipe; killed (if still running) and reaped on destruction.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 2);
    args.insert(args.begin(), PIZZA_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(pipe_fds[1]);
    err_fd_ = pipe_fds[0];
    REQUIRE(rc == 0);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(err_fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Reads stderr until `pattern` matches what was read so far (or EOF / timeout); returns it all.
  std::string read_until(const std::regex& pattern, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!std::regex_search(err_, pattern) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{err_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const auto n = ::read(err_fd_, buf, sizeof buf);
      if (n <= 0) break;
      err_.append(buf, static_cast<size_t>(n));
    }
    return err_;
  }

  // Waits for exit; returns the exit status (or 128 + signal).
  int wait() {
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string err_;
};

}  // namespace

TEST_CASE("the pizza serve binary announces its address and shuts down gracefully on SIGTERM") {
  Child child({"serve", "--model", pizza::test::shared("models/stories260K").string(), "--port", "0", "--threads", "1"});
  const std::regex ready(R"(pizza serve: listening on http://127\.0\.0\.1:(\d+)\n)");
  auto err = child.read_until(ready, std::chrono::seconds(120));
  std::smatch m;
  INFO("stderr: " << err);
  REQUIRE(std::regex_search(err, m, ready));
  const int port = std::stoi(m[1]);

  CHECK(pizza::test::get(port, "/v1/models").status == 200);
  // A long request in flight when the signal arrives is still answered.
  auto in_flight = std::async(std::launch::async, [port] {
    return pizza::test::post(port, "/v1/completions",
                             R"({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0})");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(::kill(child.pid(), SIGTERM) == 0);
  CHECK(in_flight.get().status == 200);
  CHECK(child.wait() == 0);
  CHECK_THAT(child.read_until(std::regex("$^"), std::chrono::seconds(5)), Catch::Contains("shutting down"));
}
