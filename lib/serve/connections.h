// The connection layer of `pizza serve`: an httplib::Server that slow or idle clients cannot
// exhaust. httplib gives each connection one pool thread for as long as it stays open and times
// out only single reads, so a client sending a header line (or a body byte) every few seconds
// holds its thread indefinitely, and sixteen such clients used to stop the server answering
// anyone. Here instead:
//   - each connection gets its own thread, up to max_connections (threads waiting on a socket
//     cost little; the model is shared through BatchQueue, not through these threads); one more
//     connection is answered 503 + Retry-After at once, without blocking the accept loop;
//   - a request's line and headers must all arrive within header_timeout of its first byte, and
//     its body within body_timeout of the end of the headers, whatever the pace of single reads;
//     a request cut off is answered 408 and its connection closed.
// Everything else (routing, parsing, responses) is httplib's own process_request().
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace pizza::serve {

// What a 503 asks the client to wait before retrying (Retry-After), in seconds.
inline constexpr int kRetryAfterSeconds = 1;

struct ConnectionLimits {
  std::chrono::milliseconds header_timeout{10'000};  // request line + headers, from the first byte
  std::chrono::milliseconds body_timeout{60'000};    // the body, from the end of the headers
  size_t max_connections = 256;                      // open at once; more are refused with 503
};

// A one-way flag that poll() can wait for: once set, its fd stays readable for good.
class Latch {
 public:
  Latch();
  ~Latch();
  Latch(const Latch&) = delete;
  Latch& operator=(const Latch&) = delete;
  void set();  // thread-safe, idempotent
  bool is_set() const { return set_; }
  int fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
  std::atomic<bool> set_{false};
};

// Closes sockets we are done with without destroying our last answer: closing a socket that
// still has unread input makes the kernel reset the connection, and a client that is still
// sending (a body cut off at its deadline, a request refused before it was read) may then lose
// the response before reading it. So: shut down our side, discard what the client still sends
// until it closes too or `linger` passes, then close. One thread for all such sockets.
class LingeringCloser {
 public:
  // max_sockets stays well below select()'s FD_SETSIZE, which httplib needs every socket under.
  explicit LingeringCloser(std::chrono::milliseconds linger = std::chrono::seconds(2), size_t max_sockets = 256);
  ~LingeringCloser();  // closes whatever still lingers
  LingeringCloser(const LingeringCloser&) = delete;
  LingeringCloser& operator=(const LingeringCloser&) = delete;

  // Takes ownership of `sock` (closed at once when max_sockets already linger). Never blocks.
  void add(int sock);

 private:
  struct Entry {
    int sock;
    std::chrono::steady_clock::time_point until;
  };
  void work(std::stop_token st);

  std::chrono::milliseconds linger_;
  size_t max_sockets_;
  std::mutex mutex_;
  std::condition_variable_any cv_;
  std::vector<Entry> incoming_;
  size_t lingering_ = 0;  // incoming_ plus those the worker holds
  std::jthread worker_;   // last: started once the state above exists
};

class HttpServer : public httplib::Server {
 public:
  explicit HttpServer(ConnectionLimits limits);

  // listen_after_bind() on the calling thread, which becomes the accept thread; returns once
  // stop() closed the listening socket and every connection thread has finished.
  bool serve();
  // The graceful part of shutting down: connections idle between requests close now, and none
  // reads another request after the one in flight (whose response says Connection: close).
  void drain();
  // The end of the grace period: requests still being received are dropped at once; responses
  // still being written get one more second.
  void abort();

 private:
  // Called by httplib for each accepted socket, on a connection thread; or on the accept thread
  // itself when max_connections are open, to refuse the connection.
  bool process_and_close_socket(socket_t sock) override;
  void refuse(socket_t sock);

  ConnectionLimits limits_;
  std::atomic<std::thread::id> accept_thread_{};
  Latch draining_, aborting_;
  LingeringCloser lingering_;
};

}  // namespace pizza::serve
