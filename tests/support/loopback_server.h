// Running an httplib::Server for a test: on a free loopback port, on its own thread. Header-only
// because only the tests that link cpp-httplib include it.
#pragma once

#include <catch2/catch.hpp>
#include <httplib.h>

#include <chrono>
#include <thread>

namespace pizza::test {

// Binds `server` (routes already registered) to a free port on 127.0.0.1, starts listening on
// `thread` and waits until it accepts connections. Returns the port.
inline int start_loopback(httplib::Server& server, std::thread& thread) {
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  thread = std::thread([&server] { server.listen_after_bind(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server.is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(server.is_running());
  return port;
}

inline void stop_loopback(httplib::Server& server, std::thread& thread) {
  server.stop();
  if (thread.joinable()) thread.join();
}

}  // namespace pizza::test
