#include "serve/connections.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "openai/openai.h"
#include "util/error.h"

namespace pizza::serve {

namespace {

using Clock = std::chrono::steady_clock;

// A response still being written when abort() comes gets this much longer, at most.
constexpr std::chrono::seconds kAbortGrace{1};

// poll()'s timeout in whole milliseconds, rounded up so that a wait never ends just short of
// its deadline (and then spins on a zero timeout).
int poll_ms(Clock::duration d) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
}

std::string seconds_text(std::chrono::milliseconds d) {
  std::string s = std::to_string(static_cast<double>(d.count()) / 1000.0);
  s.erase(s.find_last_not_of('0') + 1);  // "10.000000" -> "10.", "0.250000" -> "0.25"
  if (s.back() == '.') s.pop_back();
  return s + " s";
}

// A complete response written by hand, for the answers given outside httplib's request cycle
// (a request cut off at its deadline, a connection over the bound). The connection closes after.
std::string raw_response(int status, const char* reason, const ApiError& e, bool retry_after) {
  const std::string body = error_body(e);
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
  if (retry_after) r += "Retry-After: " + std::to_string(kRetryAfterSeconds) + "\r\n";
  return r + "\r\n" + body;
}

// httplib's TaskQueue, one thread per connection up to `max` (threads are started as needed and
// kept for the next connections). Over the bound, enqueue() runs the job on the calling thread,
// the accept loop, where HttpServer recognises it and refuses the connection without blocking.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  explicit ConnectionPool(size_t max) : max_(std::max<size_t>(1, max)) {}
  ~ConnectionPool() override { shutdown(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void enqueue(std::function<void()> fn) override {
    if (!admit(fn)) fn();
  }

  // Called by httplib on the accept thread once its loop has ended: waits for every connection.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  bool admit(std::function<void()>& fn) {
    std::lock_guard lock(mutex_);
    if (busy_ >= max_ || shutdown_) return false;
    if (busy_ == threads_.size()) {  // every thread has a connection: start one more
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        return false;  // the system has no thread to spare: refused like one over the bound
      }
    }
    ++busy_;
    jobs_.push_back(std::move(fn));
    cv_.notify_one();
    return true;
  }

  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
      std::lock_guard lock(mutex_);
      --busy_;
    }
  }

  const size_t max_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  size_t busy_ = 0;  // connections queued or being served (<= threads_.size())
  bool shutdown_ = false;
  std::vector<std::thread> threads_;  // only the accept thread adds to it or joins it
};

enum class Cut { none, header_deadline, body_deadline, dropped };

// httplib::Stream over one connection's socket that enforces the request deadlines: every read
// waits at most until the current deadline, however the bytes trickle in, and fails at once on
// abort(). Buffered per connection (httplib reads headers a byte at a time).
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(socket_t sock, const ConnectionLimits& limits, const Latch& aborting, std::chrono::milliseconds write_timeout)
      : sock_(sock), limits_(limits), aborting_(aborting), write_timeout_(write_timeout) {}

  // A new request begins: its line and headers are due within header_timeout.
  void start_request() {
    in_headers_ = true;
    deadline_ = Clock::now() + limits_.header_timeout;
    matched_ = 0;
  }
  bool buffered() const { return off_ < len_; }
  // Why the request could not be read, if a deadline or abort() cut it off.
  Cut cut() const { return cut_; }

  // Writes all of `data` (this connection's last words after a cut).
  void send_all(std::string_view data) {
    while (!data.empty()) {
      const auto n = send_some(data.data(), data.size());
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  bool is_readable() const override {
    pollfd p{sock_, POLLIN, 0};
    return buffered() || ::poll(&p, 1, 0) > 0;
  }
  bool is_writable() const override {
    pollfd p{sock_, POLLOUT, 0};
    return ::poll(&p, 1, poll_ms(write_timeout_)) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (cut_ != Cut::none) return -1;
    if (!buffered()) {
      if (!wait_readable()) return -1;
      ssize_t n;
      do n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_.data() + off_, n);
    off_ += n;
    if (in_headers_) see_header_bytes(ptr, n);
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    // After a cut httplib still answers the half-read request (400): swallow that, the caller
    // answers for the cut itself.
    if (cut_ != Cut::none) return static_cast<ssize_t>(size);
    return send_some(ptr, size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(::getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(::getsockname, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  // Watches the bytes httplib consumes for the blank line that ends the headers; from there
  // the body has its own deadline.
  void see_header_bytes(const char* p, size_t n) {
    static constexpr char kEnd[] = "\r\n\r\n";
    for (size_t i = 0; i < n; ++i) {
      if (p[i] == kEnd[matched_]) {
        ++matched_;
      } else {
        matched_ = p[i] == '\r' ? 1 : 0;
      }
      if (matched_ == 4) {
        in_headers_ = false;
        deadline_ = Clock::now() + limits_.body_timeout;
        return;
      }
    }
  }

  bool wait_readable() {
    for (;;) {
      const auto left = deadline_ - Clock::now();
      if (left <= Clock::duration::zero()) {
        cut_ = in_headers_ ? Cut::header_deadline : Cut::body_deadline;
        return false;
      }
      std::array<pollfd, 2> fds{{{sock_, POLLIN, 0}, {aborting_.fd(), POLLIN, 0}}};
      const int r = ::poll(fds.data(), fds.size(), poll_ms(left));
      if (r < 0 && errno != EINTR) {
        cut_ = Cut::dropped;
        return false;
      }
      if (r <= 0) continue;
      if (fds[1].revents != 0) {
        cut_ = Cut::dropped;
        return false;
      }
      if (fds[0].revents != 0) return true;  // data, or a close or error that recv() reports
    }
  }

  ssize_t send_some(const char* ptr, size_t size) {
    auto deadline = Clock::now() + write_timeout_;
    bool grace = false;  // abort() came: kAbortGrace more at most
    for (;;) {
      if (!grace && aborting_.is_set()) {
        grace = true;
        deadline = std::min(deadline, Clock::now() + kAbortGrace);
      }
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) return -1;
      std::array<pollfd, 2> fds{{{sock_, POLLOUT, 0}, {aborting_.fd(), POLLIN, 0}}};
      const int r = ::poll(fds.data(), grace ? 1 : 2, poll_ms(left));
      if (r < 0 && errno != EINTR) return -1;
      if (r > 0 && fds[0].revents != 0) break;
    }
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (get(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  socket_t sock_;
  const ConnectionLimits& limits_;
  const Latch& aborting_;
  std::chrono::milliseconds write_timeout_;
  std::array<char, 4096> buf_{};
  size_t off_ = 0, len_ = 0;
  bool in_headers_ = true;
  size_t matched_ = 0;  // how much of "\r\n\r\n" the header bytes end with
  Clock::time_point deadline_{};
  Cut cut_ = Cut::none;
};

}  // namespace

Latch::Latch() {
  if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw InputError(std::string("pizza serve: cannot create a pipe: ") + std::strerror(errno));
}

Latch::~Latch() {
  ::close(fds_[0]);
  ::close(fds_[1]);
}

void Latch::set() {
  if (set_.exchange(true)) return;
  const char byte = 1;
  [[maybe_unused]] auto n = ::write(fds_[1], &byte, 1);
}

LingeringCloser::LingeringCloser(std::chrono::milliseconds linger, size_t max_sockets)
    : linger_(linger), max_sockets_(max_sockets), worker_([this](std::stop_token st) { work(st); }) {}

LingeringCloser::~LingeringCloser() {
  worker_.request_stop();
  worker_.join();
  for (const auto& e : incoming_) ::close(e.sock);
}

void LingeringCloser::add(int sock) {
  ::shutdown(sock, SHUT_WR);  // our answer is complete: the client reads it, then end of stream
  std::lock_guard lock(mutex_);
  if (lingering_ >= max_sockets_) {
    ::close(sock);
    return;
  }
  ++lingering_;
  incoming_.push_back({sock, Clock::now() + linger_});
  cv_.notify_one();
}

void LingeringCloser::work(std::stop_token st) {
  std::vector<Entry> active;
  std::vector<pollfd> fds;
  std::array<char, 4096> scratch{};
  while (!st.stop_requested()) {
    {
      std::unique_lock lock(mutex_);
      if (active.empty()) cv_.wait(lock, st, [&] { return !incoming_.empty(); });
      active.insert(active.end(), incoming_.begin(), incoming_.end());
      incoming_.clear();
    }
    if (active.empty()) continue;
    fds.clear();
    for (const auto& e : active) fds.push_back({e.sock, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 50);  // a short wait also picks up newly added sockets
    const auto now = Clock::now();
    size_t kept = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      bool done = now >= active[i].until;
      // A bounded number of reads per round: a client that never stops sending cannot keep
      // this thread from the others.
      for (int reads = 0; !done && fds[i].revents != 0 && reads < 16; ++reads) {
        const auto n = ::recv(active[i].sock, scratch.data(), scratch.size(), MSG_DONTWAIT);
        if (n > 0) continue;
        done = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        break;
      }
      if (done) {
        ::close(active[i].sock);
      } else {
        active[kept++] = active[i];
      }
    }
    const size_t closed = active.size() - kept;
    active.resize(kept);
    if (closed > 0) {
      std::lock_guard lock(mutex_);
      lingering_ -= closed;
    }
  }
  for (const auto& e : active) ::close(e.sock);
}

HttpServer::HttpServer(ConnectionLimits limits) : limits_(limits) {
  // httplib owns (and deletes) the queue it gets from this factory.
  new_task_queue = [this] { return new ConnectionPool(limits_.max_connections); };
}

bool HttpServer::serve() {
  accept_thread_ = std::this_thread::get_id();
  return listen_after_bind();
}

void HttpServer::drain() { draining_.set(); }

void HttpServer::abort() { aborting_.set(); }

bool HttpServer::process_and_close_socket(socket_t sock) {
  if (std::this_thread::get_id() == accept_thread_.load()) {
    refuse(sock);
    return false;
  }
  const auto write_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::seconds(write_timeout_sec_) + std::chrono::microseconds(write_timeout_usec_));
  DeadlineStream strm(sock, limits_, aborting_, write_timeout);
  // Waits (up to httplib's keep-alive timeout) for the next request; false when the client
  // closed or kept quiet, or once draining (a request already arriving is still read).
  auto next_request = [&] {
    if (strm.buffered()) return true;
    const auto deadline = Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
    for (;;) {
      std::array<pollfd, 2> fds{{{sock, POLLIN, 0}, {draining_.fd(), POLLIN, 0}}};
      const int r = ::poll(fds.data(), fds.size(), poll_ms(deadline - Clock::now()));
      if (r < 0 && errno != EINTR) return false;
      if (r > 0 && fds[0].revents != 0) return true;
      if (r > 0 && fds[1].revents != 0) return false;
      if (Clock::now() >= deadline) return false;
    }
  };
  bool ok = false;
  for (size_t left = keep_alive_max_count_; left > 0 && next_request(); --left) {
    strm.start_request();
    bool client_closes = false;
    ok = process_request(strm, left == 1 || draining_.is_set(), client_closes, nullptr);
    if (strm.cut() == Cut::header_deadline || strm.cut() == Cut::body_deadline) {
      const bool headers = strm.cut() == Cut::header_deadline;
      const std::string message =
          headers ? "the request's line and headers did not arrive within " + seconds_text(limits_.header_timeout) +
                        " (--header-timeout)"
                  : "the request body did not arrive within " + seconds_text(limits_.body_timeout) +
                        " of its headers (--body-timeout)";
      strm.send_all(raw_response(408, "Request Timeout", ApiError(408, message, "", "request_timeout"), false));
      lingering_.add(sock);  // the client may still be sending: do not reset the connection on it
      return false;
    }
    if (!ok || client_closes || strm.cut() != Cut::none || draining_.is_set()) break;
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

void HttpServer::refuse(socket_t sock) {
  // On the accept thread: nothing here may block. The answer fits a fresh socket's send buffer.
  const std::string busy = raw_response(
      503, "Service Unavailable",
      ApiError(503,
               "the server is busy: " + std::to_string(limits_.max_connections) +
                   " connections are open (--max-connections); retry later",
               "", "server_overloaded", "server_error"),
      true);
  [[maybe_unused]] auto n = ::send(sock, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  lingering_.add(sock);
}

}  // namespace pizza::serve
