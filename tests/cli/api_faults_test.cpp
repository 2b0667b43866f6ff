// `pizza api` under faults, end to end: the built binary against a real `pizza serve`
// (stories260K) behind pizza_fault_proxy, which injects 429/500/503, slow answers, dropped
// connections and truncated JSON, or answers insufficient_quota, and counts what it saw.
// Retries must make a faulty run's result identical to a fault-free one; quota and a dead
// server must stop with a clear error; the response cache must make reruns free and let a
// killed run resume, sending only what it is missing.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <simdjson.h>
#include <thread>

#include "api_servers.h"
#include "cli_helpers.h"
#include "support/paths.h"
#include "support/subprocess.h"

using namespace pizza::test;

namespace {

// 26 words: occlusion over --unit word sends the original completion plus one request per
// word, 27 distinct requests, enough for a 20% fault rate to deal every fault kind.
const std::string kLongPrompt =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max "
    "every sunny day.";
const std::string kPrompt = "Once upon a time, there was a little girl named Lily.";  // 11 words: 12 requests

// `pizza serve` options for runs whose results are compared: one request per forward pass.
// Batched with others, a request's float32 log-probabilities vary in the last digits with the
// batch's composition, which depends on timing.
const std::vector<std::string> kOneAtATime{"--max-batch", "1"};

std::vector<std::string> api_args(const std::string& base_url, const std::string& prompt, std::vector<std::string> extra) {
  std::vector<std::string> a{"api",    "--base-url", base_url,  "--model",  "stories260K", "--prompt", prompt, "--unit",
                             "word",   "--max-tokens", "4",     "--format", "json",        "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The fields of a `--format json` result that legitimately differ between runs that obtained
// the same answers differently: wall-clock times, and the server block's usage/requests/sent
// counters (a cached rerun sends nothing).
const std::set<std::string> kVolatile{"timings", "extra.experiment_log.duration_ms", "extra.server.usage",
                                      "extra.server.requests", "extra.server.sent"};

// `element` minified, without the kVolatile fields (`path`: its dotted path in the result).
std::string without_volatile(simdjson::dom::element element, const std::string& path) {
  if (element.type() != simdjson::dom::element_type::OBJECT) return simdjson::minify(element);
  std::string out;
  for (auto [key, value] : element.get_object()) {
    const std::string child = path.empty() ? std::string(key) : path + "." + std::string(key);
    if (kVolatile.contains(child)) continue;
    out += (out.empty() ? "{\"" : ",\"") + std::string(key) + "\":" + without_volatile(value, child);
  }
  return out.empty() ? "{}" : out + "}";
}

// A result as compared between runs: without the volatile fields, and with the base URL (which
// names the proxy's port, and so differs between proxies) replaced.
std::string comparable(std::string json, const std::string& base_url) {
  for (size_t at; (at = json.find(base_url)) != std::string::npos;) json.replace(at, base_url.size(), "BASE_URL");
  simdjson::dom::parser parser;
  return without_volatile(parser.parse(json), "");
}

// Response files in a cache directory (sharded <dir>/ab/<sha256>.json; a write cut short by a
// kill leaves at most a temporary file, which does not count).
size_t cache_files(const std::filesystem::path& dir) {
  size_t n = 0;
  if (!std::filesystem::exists(dir)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") ++n;
  return n;
}

CliResult run_ok(const std::vector<std::string>& args) {
  auto r = run_cli(args);
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r;
}

}  // namespace

TEST_CASE("api: with 20% faults of every kind the run retries and its result equals a fault-free run") {
  // Two in flight keep the serial server's queue (and so every fault-free answer) well inside
  // the 2 s timeout on a loaded machine.
  PizzaServe serve(kOneAtATime);
  const std::vector<std::string> options{"--no-cache", "--timeout", "2", "--concurrency", "2"};
  FaultProxy clean(serve.origin(), {});
  // Seed 6 faults arrivals 1, 11, 12, 20, 21, 24, 29 and 31 of the 35 (27 requests + 8
  // retries); kinds are dealt in turn, so each of the six occurs. Slow answers (3 s) outlast
  // the 2 s client timeout.
  FaultProxy faulty(serve.origin(), {"--fault-rate", "0.2", "--seed", "6", "--slow-ms", "3000", "--retry-after", "1"});

  const auto reference = run_ok(api_args(clean.base_url(), kLongPrompt, options));
  const auto clean_stats = clean.stats();
  CHECK(clean_stats.received == 27);  // the original completion + one per word
  CHECK(clean_stats.faults_total == 0);

  const auto start = std::chrono::steady_clock::now();
  const auto result = run_ok(api_args(faulty.base_url(), kLongPrompt, options));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 60);

  CHECK(comparable(result.out, faulty.base_url()) == comparable(reference.out, clean.base_url()));
  const auto s = faulty.stats();
  INFO("proxy stderr: " << faulty.process().err());
  CHECK(s.distinct == 27);
  CHECK(s.faults_total >= 6);
  for (const char* kind : {"429", "500", "503", "slow", "drop", "truncated"}) {
    INFO("fault kind " << kind);
    CHECK(s.faults.at(kind) >= 1);
  }
  CHECK(s.faults.at("quota") == 0);
  // Every fault cost exactly one retry, and nothing else was sent twice.
  CHECK(s.received == s.distinct + s.faults_total);
}

TEST_CASE("api: 429 insufficient_quota stops the run at the first request with a quota error") {
  PizzaServe serve;
  FaultProxy proxy(serve.origin(), {"--quota"});
  const auto r = run_cli(api_args(proxy.base_url(), kPrompt, {"--no-cache"}));
  check_input_error(r, {"quota", "insufficient_quota"});
  const auto s = proxy.stats();
  CHECK(s.received == 1);  // no retry, and no further request
  CHECK(s.faults.at("quota") == 1);
  CHECK(s.forwarded == 0);
}

TEST_CASE("api: a server that is down is a clear error after the retries, without a hang") {
  PizzaServe serve;
  int port = 0;
  {
    // A proxy that has exited leaves a closed loopback port behind.
    FaultProxy gone(serve.origin(), {});
    port = gone.port();
    gone.process().kill(SIGTERM);
    CHECK(gone.process().wait() == 0);
  }
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_cli(api_args("http://127.0.0.1:" + std::to_string(port) + "/v1", kPrompt, {"--no-cache", "--max-retries", "2"}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Backoff before retries 1 and 2 is at most 0.5 s and 1 s (full jitter, base 0.5 s).
  CHECK(seconds < 20);
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  // One log line per retry, then the error naming the server and the attempts.
  const auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 3);
  for (size_t i = 0; i < 2; ++i) CHECK_THAT(lines[i], Catch::Contains("retry " + std::to_string(i + 1) + " of 2"));
  CHECK(lines[2].rfind("pizza: error: ", 0) == 0);
  CHECK_THAT(lines[2], Catch::Contains("127.0.0.1:" + std::to_string(port)) && Catch::Contains("after 3 attempt(s)"));
}

TEST_CASE("api: a cached rerun sends nothing and writes the same result") {
  PizzaServe serve;
  FaultProxy proxy(serve.origin(), {});
  TempDir cache;
  const auto args = api_args(proxy.base_url(), kPrompt, {"--cache-dir", cache.path().string()});
  const auto first = run_ok(args);
  const auto after_first = proxy.stats().received;
  CHECK(after_first == 12);
  CHECK(cache_files(cache.path()) == 12);

  const auto second = run_ok(args);
  CHECK(proxy.stats().received == after_first);  // zero requests
  CHECK(comparable(second.out, proxy.base_url()) == comparable(first.out, proxy.base_url()));
  CHECK(second.out.find("\"sent\":0") != std::string::npos);
}

TEST_CASE("api: a run killed midway resumes from the cache, sending only the missing requests") {
  PizzaServe serve(kOneAtATime);
  // 300 ms per request and one at a time: the run takes ~3.6 s, slow enough to kill midway.
  FaultProxy proxy(serve.origin(), {"--latency-ms", "300"});
  const auto reference = run_ok(api_args(proxy.base_url(), kPrompt, {"--no-cache"}));
  const uint64_t total = proxy.stats().received;
  REQUIRE(total == 12);

  TempDir cache;
  const auto args = api_args(proxy.base_url(), kPrompt, {"--cache-dir", cache.path().string(), "--concurrency", "1"});
  {
    std::vector<std::string> argv{PIZZA_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess run(std::move(argv));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (proxy.stats().received < total + 5 && !run.exited() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(!run.exited());
    run.kill(SIGKILL);
    CHECK(run.wait() == 128 + SIGKILL);
  }
  const size_t cached = cache_files(cache.path());
  INFO("responses cached before the kill: " << cached);
  CHECK(cached >= 3);  // 5 requests seen; the last one or two may have been in flight
  CHECK(cached < total);

  const auto before = proxy.stats().received;
  const auto resumed = run_ok(args);
  CHECK(proxy.stats().received - before == total - cached);
  CHECK(cache_files(cache.path()) == total);
  CHECK(comparable(resumed.out, proxy.base_url()) == comparable(reference.out, proxy.base_url()));
}
