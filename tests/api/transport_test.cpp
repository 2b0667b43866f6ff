#include "api/fake_server.h"
#include "api/request.h"
#include "api/response.h"
#include "api/transport.h"
#include "support/loopback_server.h"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include <string>
#include <vector>

using namespace pizza::api;
using pizza::test::FakeServer;
using pizza::test::Fault;

namespace {

std::vector<HttpRequest> chat_requests(const FakeServer& server, size_t n) {
  std::vector<HttpRequest> out;
  for (size_t i = 0; i < n; ++i) {
    CompletionRequest r;
    r.model = "fake-model";
    r.prompt = "prompt " + std::to_string(i);
    out.push_back({server.base_url() + "/chat/completions", serialize_body(r), 10});
  }
  return out;
}

// Tiny backoff so the retry tests run fast.
TransportOptions quick_options() {
  TransportOptions o;
  o.retry.base_s = 0.01;
  o.retry.cap_s = 0.05;
  o.timeout_s = 1.0;
  o.connect_timeout_s = 1.0;
  return o;
}

// A fake clock that only moves when the transport sleeps; records every sleep.
struct FakeTime {
  std::chrono::steady_clock::time_point now{};
  std::vector<double> sleeps;
  void install(TransportOptions& o, double jitter) {
    o.hooks.now = [this] { return now; };
    o.hooks.sleep = [this](Seconds d) {
      sleeps.push_back(d.count());
      now += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
    };
    o.hooks.random01 = [jitter] { return jitter; };
  }
};

}  // namespace

TEST_CASE("transport: with 20% faults every result arrives, correct and in order", "[api]") {
  FakeServer server({FakeServer::every(0.2, {Fault::RateLimit0, Fault::Error500, Fault::Error503, Fault::Drop,
                                             Fault::Truncated, Fault::Slow, Fault::RateLimit1}),
                     0, 2000});
  auto requests = chat_requests(server, 40);
  TransportOptions o = quick_options();
  o.concurrency = 4;
  size_t last_done = 0;
  auto results = run_all(requests, o, [&](size_t done, size_t total) {
    CHECK(total == 40);
    CHECK(done == last_done + 1);
    last_done = done;
  });
  CHECK(last_done == 40);
  REQUIRE(results.size() == 40);
  size_t retried = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    INFO("request " << i << ": " << results[i].error);
    REQUIRE(results[i].ok());
    CHECK(results[i].status == 200);
    CompletionRequest r;
    r.prompt = "prompt " + std::to_string(i);
    CHECK(parse_completion(results[i].body, r).text == "echo:prompt " + std::to_string(i));
    if (results[i].attempts > 1) ++retried;
  }
  CHECK(server.faults() >= 8);  // 20% of at least 40 requests
  CHECK(retried > 0);
  // Every fault costs exactly one extra request; nothing else is resent.
  CHECK(server.requests() == 40 + server.faults());
}

TEST_CASE("transport: insufficient_quota aborts the run at once", "[api]") {
  FakeServer server({FakeServer::first(1000, Fault::Quota), 0, 0});
  auto requests = chat_requests(server, 10);
  TransportOptions o = quick_options();
  o.concurrency = 1;
  CHECK_THROWS_AS(run_all(requests, o), QuotaExceeded);
  CHECK(server.requests() == 1);
  CHECK_THROWS_WITH(run_all(requests, o), Catch::Contains("insufficient_quota") && Catch::Contains("quota"));
}

TEST_CASE("transport: an unreachable server is a clear error after the retries", "[api]") {
  std::string url = "http://127.0.0.1:" + std::to_string(pizza::test::unused_port()) + "/v1/chat/completions";
  std::vector<HttpRequest> requests = {{url, "{}", 1}};
  TransportOptions o = quick_options();
  o.retry.max_retries = 3;
  auto results = run_all(requests, o);
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].ok());
  CHECK(results[0].attempts == 4);
  CHECK_THAT(results[0].error, Catch::Contains("connect") && Catch::Contains(url));
  o.fail_fast = true;
  CHECK_THROWS_WITH(run_all(requests, o), Catch::Contains("after 4 attempt(s)") && Catch::Contains(url));
}

TEST_CASE("transport: a sliding window keeps `concurrency` requests in flight", "[api]") {
  FakeServer server({{}, 200, 0});
  auto requests = chat_requests(server, 16);
  TransportOptions o = quick_options();
  o.timeout_s = o.connect_timeout_s = 30;  // nothing here should time out, even on a busy machine
  o.concurrency = 8;
  auto results = run_all(requests, o);
  for (auto& r : results) CHECK(r.ok());
  CHECK(server.requests() == 16);
  CHECK(server.max_in_flight() >= 6);
  CHECK(server.max_in_flight() <= 8);
}

TEST_CASE("transport: backoff follows the injected jitter and Retry-After wins over it", "[api]") {
  TransportOptions o;  // default policy: base 0.5 s
  o.concurrency = 1;
  FakeTime time;
  time.install(o, 0.5);
  SECTION("two 500s: waits 0.5 * 0.5 s, then 0.5 * 1 s") {
    FakeServer server({FakeServer::first(2, Fault::Error500), 0, 0});
    auto results = run_all(chat_requests(server, 1), o);
    CHECK(results[0].ok());
    CHECK(results[0].attempts == 3);
    CHECK(time.sleeps == std::vector<double>{0.25, 0.5});
  }
  SECTION("Retry-After: 1") {
    FakeServer server({FakeServer::first(1, Fault::RateLimit1), 0, 0});
    CHECK(run_all(chat_requests(server, 1), o)[0].ok());
    CHECK(time.sleeps == std::vector<double>{1.0});
  }
  SECTION("retry-after-ms: 250") {
    FakeServer server({FakeServer::first(1, Fault::RetryAfterMs), 0, 0});
    CHECK(run_all(chat_requests(server, 1), o)[0].ok());
    CHECK(time.sleeps == std::vector<double>{0.25});
  }
  SECTION("x-ratelimit-remaining-requests: 0 holds the next request for the reset time") {
    FakeServer server({FakeServer::first(1, Fault::RateLimitHeaders), 0, 0});
    auto results = run_all(chat_requests(server, 2), o);
    CHECK(results[1].ok());
    CHECK(time.sleeps == std::vector<double>{2.0});
  }
  SECTION("--rpm 60 paces requests past the bucket at one per second") {
    o.rpm = 60;  // bucket of 6, refilled at 1 per second
    FakeServer server({{}, 0, 0});
    auto results = run_all(chat_requests(server, 8), o);
    CHECK(results[7].ok());
    CHECK(time.sleeps == std::vector<double>{1.0, 1.0});
  }
  SECTION("retries stop at max_retries") {
    o.retry.max_retries = 2;
    FakeServer server({FakeServer::first(100, Fault::Error503), 0, 0});
    auto results = run_all(chat_requests(server, 1), o);
    CHECK_FALSE(results[0].ok());
    CHECK(results[0].attempts == 3);
    CHECK(server.requests() == 3);
    CHECK_THAT(results[0].error, Catch::Contains("HTTP 503") && Catch::Contains("upstream unavailable"));
  }
}

TEST_CASE("transport: 401 names the key settings and client errors are not retried", "[api]") {
  TransportOptions o = quick_options();
  o.api_key = "sk-test-key-401";
  {
    FakeServer server({FakeServer::first(100, Fault::Unauthorized), 0, 0});
    CHECK_THROWS_WITH(run_all(chat_requests(server, 3), o), Catch::Contains("OPENAI_API_KEY") &&
                                                                Catch::Contains("--api-key-file") &&
                                                                !Catch::Contains("sk-test-key-401"));
  }
  {
    FakeServer server({FakeServer::first(100, Fault::EchoKeyNotJson), 0, 0});
    auto results = run_all(chat_requests(server, 1), o);
    CHECK(server.requests() == 1);  // a 400 is final
    CHECK_THAT(results[0].error,
               Catch::Contains("HTTP 400") && Catch::Contains("bad request; you sent Bearer [redacted]"));
    CHECK(server.authorizations().at(0) == "Bearer sk-test-key-401");  // the key was sent
  }
}

TEST_CASE("transport: a body past max_response_bytes aborts its transfer and fails its request", "[api]") {
  TransportOptions o = quick_options();
  o.timeout_s = 30;  // the cap, not the timeout, must end the endless body
  o.max_response_bytes = size_t{1} << 20;
  FakeServer server({FakeServer::first(1, Fault::Endless), 0, 0});
  auto results = run_all(chat_requests(server, 2), o);
  // The first request to *arrive* gets the endless body; the two run concurrently, so it may be
  // either: exactly one fails on the cap, the other is answered.
  REQUIRE(results.size() == 2);
  REQUIRE(results[0].ok() != results[1].ok());
  const auto& failed = results[0].ok() ? results[1] : results[0];
  CHECK_THAT(failed.error, Catch::Contains("larger than --max-response-bytes 1048576 bytes") &&
                               Catch::Contains(server.base_url()));
  CHECK(failed.attempts == 1);  // not retried
  CHECK(failed.body.size() <= o.max_response_bytes);
}

TEST_CASE("transport: the --max-wait budget bounds the run's waiting, and long waits are announced", "[api]") {
  TransportOptions o;
  o.concurrency = 1;
  FakeTime time;
  time.install(o, 0.5);
  std::ostringstream log;
  o.logger = std::make_shared<spdlog::logger>("budget-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  SECTION("Retry-After: 1 on every attempt: two retries fit a 2.5 s budget, the third does not") {
    o.max_wait_s = 2.5;
    FakeServer server({FakeServer::first(100, Fault::RateLimit1), 0, 0});
    auto results = run_all(chat_requests(server, 1), o);
    REQUIRE_FALSE(results[0].ok());
    CHECK(time.sleeps == std::vector<double>{1.0, 1.0});
    CHECK(server.requests() == 3);
    CHECK_THAT(results[0].error, Catch::Contains("HTTP 429") && Catch::Contains("--max-wait budget of 2.5 s"));
  }
  SECTION("a Retry-After date in the year 9999 waits the 300 s cap, not 0") {
    FakeServer server({FakeServer::first(1, Fault::RetryAfterFarDate), 0, 0});
    CHECK(run_all(chat_requests(server, 1), o)[0].ok());
    CHECK(time.sleeps == std::vector<double>{300.0});
    CHECK_THAT(log.str(), Catch::Contains("retry 1 of 5 in 300.00 s (the server's Retry-After)"));
  }
  SECTION("... and fails at once when the budget is smaller") {
    o.max_wait_s = 10;
    FakeServer server({FakeServer::first(1, Fault::RetryAfterFarDate), 0, 0});
    auto results = run_all(chat_requests(server, 1), o);
    CHECK_FALSE(results[0].ok());
    CHECK(time.sleeps.empty());
    CHECK(server.requests() == 1);
  }
  SECTION("x-ratelimit-remaining-requests: 0 with a 10 s reset is announced") {
    FakeServer server({FakeServer::first(1, Fault::RateLimitHeadersLong), 0, 0});
    CHECK(run_all(chat_requests(server, 2), o)[1].ok());
    CHECK(time.sleeps == std::vector<double>{10.0});
    CHECK_THAT(log.str(), Catch::Contains("[info]") && Catch::Contains("pausing new requests for 10.0 s"));
  }
  SECTION("... and held no longer than the budget") {
    o.max_wait_s = 4;
    FakeServer server({FakeServer::first(1, Fault::RateLimitHeadersLong), 0, 0});
    CHECK(run_all(chat_requests(server, 2), o)[1].ok());
    CHECK(time.sleeps == std::vector<double>{4.0});
  }
}

TEST_CASE("transport: a response body is redacted of the key before anyone reads it", "[api]") {
  TransportOptions o = quick_options();
  o.api_key = "sk-SENTINEL-0123456789abcdef";
  FakeServer server({{}, 0, 0, [](size_t, std::string body, const std::string& auth) {
                       return body.replace(body.find("fp_fake"), 7, auth);
                     }});
  std::vector<std::string> seen;
  o.on_success = [&](size_t, const HttpResult& r) { seen.push_back(r.body); };
  auto results = run_all(chat_requests(server, 1), o);
  REQUIRE(results[0].ok());
  REQUIRE(seen.size() == 1);
  CHECK_THAT(seen[0], Catch::Contains("Bearer [redacted]") && !Catch::Contains("SENTINEL"));
  CHECK_THAT(results[0].body, !Catch::Contains("SENTINEL"));
}

TEST_CASE("transport: a MalformedResponse from on_success is retried, then fails naming it", "[api]") {
  TransportOptions o = quick_options();
  o.retry.max_retries = 2;
  int calls = 0;
  o.on_success = [&](size_t, const HttpResult&) {
    if (++calls < 100) throw MalformedResponse("bad logprob at choices[0].logprobs.content[0].logprob");
  };
  FakeServer server({{}, 0, 0});
  auto results = run_all(chat_requests(server, 1), o);
  REQUIRE_FALSE(results[0].ok());
  CHECK(results[0].attempts == 3);
  CHECK_THAT(results[0].error, Catch::Contains("choices[0].logprobs.content[0].logprob"));
}
