// HTTP transport for `pizza api`: libcurl's multi interface keeps a sliding window of
// `concurrency` POSTs in flight (a finished request immediately makes room for the next; no
// batch-and-sleep), reuses connections and multiplexes over HTTP/2 when the server offers it.
// Retries 408/409/429/5xx, transport errors and unparseable (truncated) bodies with
// exponential backoff and full jitter, honouring Retry-After within a total waiting budget.
// Bodies are capped (max_response_bytes). The API key only ever goes into the Authorization
// header: every response body is redacted of it as it arrives, before anything (messages, logs,
// on_success, the cache) sees it.
#pragma once

#include "api/retry.h"

#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace pizza::api {

struct HttpRequest {
  std::string url;
  std::string body;       // JSON, POSTed
  double est_tokens = 0;  // for --tpm and the x-ratelimit-remaining-tokens check
};

struct HttpResult {
  long status = 0;  // final HTTP status (0: no response)
  std::string body;
  Headers headers;    // of the final response, names lower-cased
  std::string error;  // empty on success; else why it failed after all retries
  int attempts = 0;
  bool ok() const { return error.empty(); }
};

// Injection points for tests; defaults are the real clock, sleep and a seeded PRNG.
struct TransportHooks {
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<std::chrono::system_clock::time_point()> wall_now;  // for Retry-After dates
  // Called only while nothing is in flight and the next request must wait (backoff, limits).
  std::function<void(Seconds)> sleep;
  std::function<double()> random01;  // uniform [0, 1), the jitter draw
};

struct TransportOptions {
  std::string api_key;  // "" : no Authorization header
  int concurrency = 8;
  double timeout_s = 120;  // whole request
  double connect_timeout_s = 20;
  RetryPolicy retry;
  // A response body longer than this aborts its transfer and fails its request for good (not
  // retried: a server that sends an endless or oversized body will do so again).
  size_t max_response_bytes = size_t{64} << 20;
  // The run's total waiting budget in seconds: wall-clock time during which some request waits
  // for a retry (backoff, Retry-After) or the rate-limit headers hold new requests. A retry
  // whose wait no longer fits fails its request with the server's error and the budget.
  double max_wait_s = 600;
  double rpm = 0, tpm = 0;                 // client-side limits; 0 = none
  bool fail_fast = false;                  // throw ApiError at the first request that fails for good
  std::shared_ptr<spdlog::logger> logger;  // null: spdlog's default logger
  TransportHooks hooks;
  // Called for each successful (2xx, complete JSON) response as it arrives, in arrival order.
  // A MalformedResponse thrown here counts as a bad answer (retried like a truncated body);
  // any other exception aborts the run and propagates out of run_all.
  std::function<void(size_t index, const HttpResult&)> on_success;
};

// done, total
using Progress = std::function<void(size_t, size_t)>;

// Sends every request, returning results in request order. Throws QuotaExceeded on a 429
// `insufficient_quota` (at once, without retrying), ApiError on a 401 (naming OPENAI_API_KEY
// and --api-key-file), and ApiError on the first final failure when fail_fast.
std::vector<HttpResult> run_all(std::span<const HttpRequest> requests, const TransportOptions& options,
                                const Progress& progress = {});

}  // namespace pizza::api
