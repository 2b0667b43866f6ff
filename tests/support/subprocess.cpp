#include "support/subprocess.h"

#include "support/paths.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace pizza::test {

Subprocess::Subprocess(std::vector<std::string> argv_s) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  err_fd_ = fds[0];
  if (rc != 0) {
    ::close(err_fd_);
    pid_ = -1;
    FAIL("cannot start " << argv_s.at(0) << ": " << std::strerror(rc));
  }
  reader_ = std::thread([this] {
    char buf[4096];
    for (;;) {
      const auto n = ::read(err_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        err_closed_ = true;
        changed_.notify_all();
        return;
      }
      err_.append(buf, static_cast<size_t>(n));
      changed_.notify_all();
    }
  });
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !exited()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  // The child (and any grandchild holding stderr) is gone, so the reader sees EOF.
  if (reader_.joinable()) reader_.join();
  if (err_fd_ >= 0) ::close(err_fd_);
}

std::string Subprocess::read_until(const std::regex& pattern, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return err_closed_ || std::regex_search(err_, pattern); });
  return err_;
}

std::string Subprocess::read_to_end(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return err_closed_; });
  return err_;
}

std::string Subprocess::err() const {
  std::lock_guard lock(mutex_);
  return err_;
}

void Subprocess::kill(int signal) {
  if (pid_ > 0 && status_ < 0) ::kill(pid_, signal);
}

int Subprocess::wait() {
  if (status_ < 0) {
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return status_;
}

bool Subprocess::exited() {
  if (status_ >= 0) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

ListeningProcess::ListeningProcess(std::vector<std::string> argv, std::chrono::seconds timeout)
    : process_(std::move(argv)) {
  // The port's digits end where the line goes on (a space or the newline): a line read while
  // half written does not pass for a shorter port.
  const std::regex ready(R"(listening on http://127\.0\.0\.1:(\d+)[ \n])");
  std::smatch m;
  const std::string err = process_.read_until(ready, timeout);
  INFO("stderr: " << err);
  REQUIRE(std::regex_search(err, m, ready));
  port_ = std::stoi(m[1]);
}

namespace {

std::vector<std::string> serve_argv(const std::vector<std::string>& options) {
  std::vector<std::string> argv{PIZZA_BINARY, "serve", "--model", shared("models/stories260K").string(), "--port", "0"};
  argv.insert(argv.end(), options.begin(), options.end());
  return argv;
}

}  // namespace

PizzaServe::PizzaServe(const std::vector<std::string>& options) : ListeningProcess(serve_argv(options)) {}

}  // namespace pizza::test
