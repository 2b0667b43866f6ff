// Retry and rate-limit policy, as pure functions of their inputs (clock values, random draws)
// so the schedule is testable without waiting.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::api {

using Seconds = std::chrono::duration<double>;

struct RetryPolicy {
  int max_retries = 5;  // retries after the first attempt
  double base_s = 0.5;  // backoff before the first retry is drawn from [0, base_s]
  double cap_s = 30.0;  // no backoff is longer than this
};

// Exponential backoff with full jitter: the wait before retry number `retry` (0 = first retry)
// is u * min(cap, base * 2^retry), with u in [0, 1) the caller's random draw.
Seconds backoff_delay(const RetryPolicy& policy, int retry, double u);

// Response headers, names lower-cased.
using Headers = std::map<std::string, std::string>;

// How long the server asks us to wait: `retry-after-ms` (milliseconds), else `retry-after` as
// delta-seconds or an HTTP-date (relative to `now`; a date in the past means 0, one far in the
// future a long wait that the caller caps). nullopt when absent or unparseable.
std::optional<Seconds> parse_retry_after(const Headers& headers, std::chrono::system_clock::time_point now);

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 5.6.7); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text);

// OpenAI's x-ratelimit-reset-* durations: "1s", "6m0s", "20ms", "1h2m3.5s".
std::optional<Seconds> parse_ratelimit_duration(std::string_view text);

// When the x-ratelimit-remaining-requests / -tokens headers say the next request (of
// `next_tokens` estimated tokens, with `in_flight` others already sent) would exceed the
// server's budget: how long to hold new requests (the matching x-ratelimit-reset-*, 1 s when
// absent, at most 60 s). nullopt: no need to slow down.
std::optional<Seconds> ratelimit_pause(const Headers& headers, size_t in_flight, double next_tokens);

// A token bucket for client-side limits (--rpm, --tpm): `per_minute` units refill evenly; the
// bucket holds at most a tenth of a minute's worth (at least one request's worth), so bursts
// stay small.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  // per_minute <= 0: unlimited.
  TokenBucket(double per_minute, Clock::time_point now);
  // Seconds until `amount` units are available (0 when they are now).
  Seconds wait(double amount, Clock::time_point now);
  void take(double amount, Clock::time_point now);

 private:
  void refill(Clock::time_point now);
  double rate_per_s_;
  double capacity_;
  double level_;
  Clock::time_point last_;
};

}  // namespace pizza::api
