#include "api/retry.h"

#include <catch2/catch.hpp>

using namespace pizza::api;
using std::chrono::system_clock;

TEST_CASE("retry: backoff is exponential with full jitter and a cap", "[api]") {
  RetryPolicy p;  // base 0.5 s, cap 30 s
  // With the jitter draw u the wait is u * min(30, 0.5 * 2^retry): 0.5, 1, 2, 4, 8, 16, 30, 30.
  const double ceilings[] = {0.5, 1, 2, 4, 8, 16, 30, 30};
  for (int retry = 0; retry < 8; ++retry) {
    CHECK(backoff_delay(p, retry, 1.0).count() == Approx(ceilings[retry]));
    CHECK(backoff_delay(p, retry, 0.25).count() == Approx(0.25 * ceilings[retry]));
    CHECK(backoff_delay(p, retry, 0.0).count() == 0.0);
  }
  CHECK(backoff_delay(p, 1000, 0.5).count() == Approx(15));  // no overflow for huge retry counts
}

TEST_CASE("retry: HTTP dates", "[api]") {
  // RFC 9110's example date, worked out by hand: 1970-1993 are 8760 + 6 leap days = 8766
  // days, + 309 days from 1 Jan to 6 Nov 1994 = 9075 days = 784080000 s, + 08:49:37 = 31777 s.
  auto t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
  REQUIRE(t);
  CHECK(system_clock::to_time_t(*t) == 784111777);
  CHECK_FALSE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"));
}

TEST_CASE("retry: Retry-After in seconds, as a date, and retry-after-ms", "[api]") {
  auto now = system_clock::from_time_t(784111777);
  CHECK(parse_retry_after({{"retry-after", "0"}}, now)->count() == 0);
  CHECK(parse_retry_after({{"retry-after", "1"}}, now)->count() == 1);
  CHECK(parse_retry_after({{"retry-after", " 2.5 "}}, now)->count() == 2.5);
  CHECK(parse_retry_after({{"retry-after", "Sun, 06 Nov 1994 08:49:47 GMT"}}, now)->count() == 10);
  CHECK(parse_retry_after({{"retry-after", "Sun, 06 Nov 1994 08:49:27 GMT"}}, now)->count() == 0);  // past
  CHECK(parse_retry_after({{"retry-after-ms", "250"}, {"retry-after", "9"}}, now)->count() == 0.25);
  // Far in the future: a long wait (the transport caps it), not an overflow into the past.
  CHECK(parse_retry_after({{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}, now)->count() > 2.5e11);
  CHECK_FALSE(parse_retry_after({{"retry-after", "soon"}}, now));
  CHECK_FALSE(parse_retry_after({{"retry-after", "-3"}}, now));
  CHECK_FALSE(parse_retry_after({}, now));
}

TEST_CASE("retry: x-ratelimit durations and pauses", "[api]") {
  CHECK(parse_ratelimit_duration("1s")->count() == 1);
  CHECK(parse_ratelimit_duration("6m0s")->count() == 360);
  CHECK(parse_ratelimit_duration("20ms")->count() == Approx(0.02));
  CHECK(parse_ratelimit_duration("1h2m3.5s")->count() == Approx(3723.5));
  CHECK_FALSE(parse_ratelimit_duration("abc"));
  CHECK_FALSE(parse_ratelimit_duration("5"));
  CHECK_FALSE(parse_ratelimit_duration(""));

  Headers h = {{"x-ratelimit-remaining-requests", "3"},
               {"x-ratelimit-reset-requests", "2s"},
               {"x-ratelimit-remaining-tokens", "1000"},
               {"x-ratelimit-reset-tokens", "500ms"}};
  CHECK_FALSE(ratelimit_pause(h, 2, 100));             // 3 left covers 2 in flight + 1
  CHECK(ratelimit_pause(h, 3, 100)->count() == 2);     // 3 left, 3 in flight: wait for reset
  CHECK(ratelimit_pause(h, 0, 5000)->count() == 0.5);  // not enough tokens for the next one
  CHECK(ratelimit_pause({{"x-ratelimit-remaining-requests", "0"}}, 0, 1)->count() == 1);  // no reset: 1 s
  CHECK_FALSE(ratelimit_pause({}, 100, 1e9));
}

TEST_CASE("retry: token bucket paces to the rate", "[api]") {
  using Clock = std::chrono::steady_clock;
  Clock::time_point t0{};
  TokenBucket unlimited(0, t0);
  CHECK(unlimited.wait(1e9, t0).count() == 0);

  TokenBucket rpm(60, t0);  // 1 per second, bucket of max(1, 60/10) = 6
  for (int i = 0; i < 6; ++i) {
    CHECK(rpm.wait(1, t0).count() == 0);
    rpm.take(1, t0);
  }
  CHECK(rpm.wait(1, t0).count() == Approx(1.0));
  CHECK(rpm.wait(1, t0 + std::chrono::milliseconds(400)).count() == Approx(0.6));
  CHECK(rpm.wait(1, t0 + std::chrono::seconds(1)).count() == 0);
  // A request larger than the bucket waits for a full bucket, not forever.
  CHECK(rpm.wait(100, t0 + std::chrono::seconds(1)).count() == Approx(5.0));
}
