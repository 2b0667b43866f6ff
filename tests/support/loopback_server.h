// The plumbing of the tests' fake HTTP servers (tests/api/fake_server, tests/hub/fake_hub): an
// httplib::Server on a free port of 127.0.0.1, on its own thread, that logs every request it
// routes (in arrival order, with its headers) and the most it had in flight at once; stopped
// and joined on destruction. Each fake adds its routes and answers on top. Header-only because
// only the tests that link cpp-httplib include it.
#pragma once

// (CPPHTTPLIB_*_SUPPORT, which Debian's build of the library was compiled with, come from the
// PkgConfig::HTTPLIB target, so every user of the header sees the same class layouts.)
#include <httplib.h>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pizza::test {

class LoopbackServer {
 public:
  // A request as the server saw it.
  struct Request {
    std::string method;
    std::string path;
    httplib::Headers headers;
    bool has_header(const std::string& name) const { return headers.find(name) != headers.end(); }
    // "" when absent.
    std::string header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? std::string() : it->second;
    }
  };
  // `n` is the request's place in arrival order (0-based), the same as in requests().
  using Handler = std::function<void(size_t n, const httplib::Request&, httplib::Response&)>;

  // `threads`: worker threads answering requests (0: httplib's default pool).
  explicit LoopbackServer(size_t threads = 0) {
    // httplib takes ownership of the raw pointer.
    if (threads > 0) server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
  ~LoopbackServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  // Routes (httplib patterns, regex groups in req.matches), registered before start().
  void get(const std::string& pattern, Handler handler) { server_.Get(pattern, logged(std::move(handler))); }
  void post(const std::string& pattern, Handler handler) { server_.Post(pattern, logged(std::move(handler))); }

  // Binds a free port on 127.0.0.1, listens on the server's own thread and waits until it
  // accepts connections.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(server_.is_running());
  }

  int port() const { return port_; }
  // http://127.0.0.1:PORT
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  size_t request_count() const {
    std::lock_guard lock(mutex_);
    return log_.size();
  }
  size_t max_in_flight() const {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }

 private:
  httplib::Server::Handler logged(Handler handler) {
    return [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
      size_t n = 0;
      {
        std::lock_guard lock(mutex_);
        n = log_.size();
        log_.push_back({req.method, req.path, req.headers});
        max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
      }
      struct Done {  // leaves the in-flight count even when the handler throws
        LoopbackServer& s;
        ~Done() {
          std::lock_guard lock(s.mutex_);
          --s.in_flight_;
        }
      } done{*this};
      handler(n, req, res);
    };
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<Request> log_;
  size_t in_flight_ = 0, max_in_flight_ = 0;
};

// A TCP port on 127.0.0.1 with nothing listening (bound and released).
inline int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace pizza::test
