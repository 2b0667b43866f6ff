// A raw TCP client on 127.0.0.1 for tests that must misbehave as no HTTP library would: send a
// request a line or a byte at a time, stop midway, or hold a connection open without finishing.
// Only the constructor asserts; the other members may be used from any one thread at a time.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace pizza::test {

class RawConnection {
 public:
  // Connects to 127.0.0.1:port (REQUIREs success).
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Sends all of `data`; false when the server has closed or reset the connection.
  bool send(std::string_view data);
  // Collects what the server sends for up to `timeout`, returning early once it closes its side
  // (end of stream or reset). Returns whether it has closed.
  bool wait_closed(std::chrono::milliseconds timeout);
  // Everything received so far.
  const std::string& received() const { return received_; }
  // The body of what was received (after the blank line ending the headers), "" before it.
  std::string body() const;

 private:
  int fd_ = -1;
  bool closed_ = false;
  std::string received_;
};

}  // namespace pizza::test
