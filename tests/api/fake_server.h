// A local OpenAI-compatible server for the transport tests (a LoopbackServer: 127.0.0.1, a free
// port, see support/loopback_server.h). It answers POST /v1/chat/completions and /v1/completions with a completion whose text
// is "echo:" + the prompt (so each answer can be matched to its request), can inject faults
// on chosen requests, optionally sleeps per request, and counts requests and the most seen in
// flight at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pizza::test {

enum class Fault {
  RateLimit0,  // 429, Retry-After: 0
  RateLimit1,  // 429, Retry-After: 1
  Error500,
  Error503,
  Slow,              // answers after `slow_ms` (past the client's timeout)
  Drop,              // headers and half the body, then the connection is closed
  Truncated,         // 200 with half the JSON body (complete HTTP, broken JSON)
  Quota,             // 429 insufficient_quota
  Unauthorized,      // 401 error object
  EchoKeyNotJson,    // 400 with a plain-text body that repeats the Authorization header
  NoLogprobs,        // 200, a completion with "logprobs": null
  RateLimitHeaders,  // a normal answer with x-ratelimit-remaining-requests: 0, reset 2s
  RetryAfterMs,      // 429, retry-after-ms: 250
  RetryAfterFarDate,      // 429, Retry-After: an HTTP-date in the year 9999
  RateLimitHeadersLong,   // a normal answer with x-ratelimit-remaining-requests: 0, reset 10s
  Endless,                // 200, a chunked body that never ends (cut off after 256 MiB)
};

class LoopbackServer;

class FakeServer {
 public:
  struct Config {
    // The fault for request number n (0-based, in arrival order); nullopt: answer normally.
    std::function<std::optional<Fault>(size_t)> fault_for;
    int sleep_ms = 0;    // every request
    int slow_ms = 2000;  // Fault::Slow
    // When set, rewrites each normal 200 answer: (request number, answer body, the request's
    // Authorization header) -> the body to send instead.
    std::function<std::string(size_t, std::string, const std::string&)> rewrite = {};
  };

  explicit FakeServer(Config config);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  std::string base_url() const;  // http://127.0.0.1:<port>/v1
  size_t requests() const;
  size_t faults() const { return faults_; }
  size_t max_in_flight() const;
  std::vector<std::string> authorizations() const;

  // Faults on a `fraction` of requests, spread evenly, cycling through `kinds`.
  static std::function<std::optional<Fault>(size_t)> every(double fraction, std::vector<Fault> kinds);
  // `fault` on the first `count` requests.
  static std::function<std::optional<Fault>(size_t)> first(size_t count, Fault fault);

 private:
  struct Handler;
  Config config_;
  std::atomic<size_t> faults_{0};
  std::unique_ptr<LoopbackServer> http_;  // last: stopped before the state its handlers use
};

}  // namespace pizza::test
