#include "api/client.h"
#include "api/fake_server.h"
#include "support/paths.h"
#include "util/file.h"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

using namespace pizza::api;
using pizza::test::FakeServer;
using pizza::test::Fault;
namespace fs = std::filesystem;

namespace {

std::vector<CompletionRequest> prompts(size_t n) {
  std::vector<CompletionRequest> out;
  for (size_t i = 0; i < n; ++i) {
    CompletionRequest r;
    r.model = "fake-model";
    r.prompt = "prompt " + std::to_string(i);
    r.max_tokens = 10;
    out.push_back(r);
  }
  return out;
}

ClientOptions options_for(const FakeServer& server, const fs::path& cache) {
  ClientOptions o;
  o.base_url = server.base_url();
  o.cache_dir = cache;
  o.transport.retry.base_s = 0.01;
  o.transport.retry.cap_s = 0.05;
  o.transport.timeout_s = 5;
  return o;
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  return out;
}

}  // namespace

TEST_CASE("client: a rerun is answered from the cache and sends nothing", "[api]") {
  pizza::test::TempDir dir;
  FakeServer server({{}, 0, 0});
  auto requests = prompts(5);
  ApiClient client(options_for(server, dir / "cache"));
  DryRunEstimate before = client.dry_run(requests);
  CHECK(before.requests == 5);
  CHECK(before.to_send == 5);
  CHECK(before.cached == 0);
  // "prompt 0" is 8 characters: ceil(8/4) = 2 tokens each; completion = max_tokens.
  CHECK(before.prompt_tokens == 10);
  CHECK(before.completion_tokens == 50);

  auto first = client.complete_all(requests);
  CHECK(server.requests() == 5);
  CHECK(client.last_sent() == 5);
  CHECK(files_under(dir / "cache").size() == 5);
  REQUIRE(first.size() == 5);
  CHECK(first[3].text == "echo:prompt 3");

  ApiClient again(options_for(server, dir / "cache"));
  DryRunEstimate after = again.dry_run(requests);
  CHECK(after.to_send == 0);
  CHECK(after.cached == 5);
  CHECK(after.prompt_tokens == 0);
  size_t last_progress = 0;
  auto second = again.complete_all(requests, [&](size_t done, size_t) { last_progress = done; });
  CHECK(server.requests() == 5);  // nothing sent
  CHECK(again.last_sent() == 0);
  CHECK(last_progress == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(second[i].text == first[i].text);

  // A different request (other model) is a miss.
  auto changed = prompts(1);
  changed[0].model = "other-model";
  CHECK(again.dry_run(changed).to_send == 1);
}

TEST_CASE("client: identical requests are sent once", "[api]") {
  pizza::test::TempDir dir;
  FakeServer server({{}, 0, 0});
  auto requests = prompts(2);
  requests.push_back(requests[0]);
  ApiClient client(options_for(server, dir / "cache"));
  CHECK(client.dry_run(requests).to_send == 2);
  auto out = client.complete_all(requests);
  CHECK(server.requests() == 2);
  CHECK(out[2].text == "echo:prompt 0");
}

TEST_CASE("client: a server without logprobs is a clear error and nothing bad is cached", "[api]") {
  pizza::test::TempDir dir;
  FakeServer server({FakeServer::first(100, Fault::NoLogprobs), 0, 0});
  auto o = options_for(server, dir / "cache");
  o.transport.concurrency = 1;
  ApiClient client(o);
  CHECK_THROWS_WITH(client.complete_all(prompts(4)), Catch::Contains("returned no logprobs"));
  CHECK(server.requests() == 1);  // the run stops at the first such answer
  CHECK_FALSE((fs::exists(dir / "cache") && !files_under(dir / "cache").empty()));
}

TEST_CASE("client: responses that arrived before a quota abort stay cached", "[api]") {
  pizza::test::TempDir dir;
  FakeServer server({[](size_t n) { return n >= 2 ? std::optional(Fault::Quota) : std::nullopt; }, 0, 0});
  auto o = options_for(server, dir / "cache");
  o.transport.concurrency = 1;
  ApiClient client(o);
  CHECK_THROWS_AS(client.complete_all(prompts(5)), QuotaExceeded);
  CHECK(files_under(dir / "cache").size() == 2);
  CHECK(client.dry_run(prompts(5)).to_send == 3);
}

TEST_CASE("client: the API key never reaches logs, cache files or error messages", "[api]") {
  const std::string sentinel = "sk-SENTINEL-7f3a9c1e";
  pizza::test::TempDir dir;
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto logger = std::make_shared<spdlog::logger>("api-test", sink);
  logger->set_level(spdlog::level::debug);

  // Requests 0-2 fail once in various ways (retried and logged), then all succeed; request
  // 10 onwards: a 400 echoing the Authorization header, then a 401.
  FakeServer server({[](size_t n) -> std::optional<Fault> {
                       if (n == 0) return Fault::Error500;
                       if (n == 1) return Fault::RateLimit0;
                       if (n == 2) return Fault::Truncated;
                       if (n == 10) return Fault::EchoKeyNotJson;
                       if (n >= 11) return Fault::Unauthorized;
                       return std::nullopt;
                     },
                     0, 0});
  auto o = options_for(server, dir / "cache");
  o.api_key = sentinel;
  o.transport.concurrency = 1;
  o.transport.logger = logger;
  ApiClient client(o);
  auto out = client.complete_all(prompts(4));
  CHECK(out[0].text == "echo:prompt 0");
  // 4 answers + 3 faults = 7 requests so far; the next two runs hit the 400 and the 401.
  CHECK(server.requests() == 7);
  std::vector<std::string> errors;
  auto more = prompts(12);
  for (auto batch : {std::vector<CompletionRequest>(more.begin() + 7, more.begin() + 11),
                     std::vector<CompletionRequest>(more.begin() + 11, more.end())}) {
    try {
      client.complete_all(batch);
    } catch (const ApiError& e) {
      errors.push_back(e.what());
    }
  }
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[0], Catch::Contains("HTTP 400") && Catch::Contains("[redacted]"));
  CHECK_THAT(errors[1], Catch::Contains("OPENAI_API_KEY"));
  for (const auto& e : errors) CHECK_THAT(e, !Catch::Contains(sentinel));

  // The key did go to the server, in the Authorization header.
  CHECK(server.authorizations().at(0) == "Bearer " + sentinel);
  std::string logged = log.str();
  CHECK_THAT(logged,
             Catch::Contains("POST") && Catch::Contains("Bearer [redacted]") && Catch::Contains("retry"));
  CHECK_THAT(logged, !Catch::Contains(sentinel));
  auto files = files_under(dir / "cache");
  CHECK(files.size() >= 4);
  for (auto& f : files) CHECK_THAT(pizza::read_file(f), !Catch::Contains(sentinel));
}

TEST_CASE("client: an unwritable cache warns once and the run goes on without it", "[api]") {
  pizza::test::TempDir dir;
  pizza::write_file_atomic(dir / "file", "a regular file in the way");
  // Tests run as root, so no chmod: paths that fail for root too.
  for (const fs::path& cache : {dir / "file", dir / "file" / "sub", fs::path("/proc/pizza-cache")}) {
    INFO(cache);
    std::ostringstream log;
    auto logger = std::make_shared<spdlog::logger>("cache-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
    FakeServer server({{}, 0, 0});
    auto o = options_for(server, cache);
    o.transport.logger = logger;
    ApiClient client(o);
    auto out = client.complete_all(prompts(5));
    REQUIRE(out.size() == 5);
    CHECK(out[4].text == "echo:prompt 4");
    const std::string logged = log.str();
    CHECK_THAT(logged, Catch::Contains("[warning]") && Catch::Contains("the API cache at " + cache.string()) &&
                           Catch::Contains("continuing without it"));
    CHECK(logged.find("continuing without it") == logged.rfind("continuing without it"));  // once
  }
  CHECK(pizza::read_file(dir / "file") == "a regular file in the way");
}

TEST_CASE("client: bad log-probabilities are retried and never cached", "[api]") {
  pizza::test::TempDir dir;
  // Request 0 answers logprob "NaN", request 1 a positive logprob, then good answers.
  FakeServer server({{}, 0, 0, [](size_t n, std::string body, const std::string&) {
                       if (n > 1) return body;
                       auto at = body.find("\"logprob\":-0.5");
                       return body.replace(at, 14, n == 0 ? "\"logprob\":\"NaN\"" : "\"logprob\":5.0");
                     }});
  auto o = options_for(server, dir / "cache");
  ApiClient client(o);
  auto out = client.complete_all(prompts(1));
  CHECK(out[0].tokens.at(0).logprob == -0.5);
  CHECK(server.requests() == 3);
  for (const auto& f : files_under(dir / "cache")) CHECK_THAT(pizza::read_file(f), !Catch::Contains("NaN"));

  // Always bad: the run fails naming the field, after the retries.
  FakeServer bad({{}, 0, 0, [](size_t, std::string body, const std::string&) {
                    return body.replace(body.find("\"top_logprobs\":["), 16, "\"top_logprobs\":[],\"x\":[");
                  }});
  o = options_for(bad, dir / "cache2");
  o.transport.retry.max_retries = 1;
  ApiClient failing(o);
  CHECK_THROWS_WITH(failing.complete_all(prompts(1)),
                    Catch::Contains("after 2 attempt(s)") && Catch::Contains("no top_logprobs for generated token 0"));
  CHECK_FALSE(fs::exists(dir / "cache2"));
}

TEST_CASE("client: a key echoed in model, system_fingerprint or a 200 error stays redacted", "[api]") {
  const std::string key = "sk-SENTINEL-0123456789abcdef";
  pizza::test::TempDir dir;
  std::ostringstream log;
  auto logger = std::make_shared<spdlog::logger>("echo-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  logger->set_level(spdlog::level::debug);
  FakeServer server({{}, 0, 0, [](size_t n, std::string body, const std::string& auth) {
                       if (n == 0) return R"({"error":{"message":"bad key )" + auth + R"("}})";
                       if (n == 1) return std::string(190, ' ') + auth + " not json";
                       body.replace(body.find("fp_fake"), 7, auth);
                       return body.replace(body.find("\"fake-model\""), 12, "\"m-" + auth + "\"");
                     }});
  auto o = options_for(server, dir / "cache");
  o.api_key = key;
  o.transport.logger = logger;
  ApiClient client(o);
  auto out = client.complete_all(prompts(1));
  CHECK(server.requests() == 3);
  CHECK(out[0].model == "m-Bearer [redacted]");
  CHECK(out[0].system_fingerprint == "Bearer [redacted]");
  const std::string logged = log.str();
  CHECK_THAT(logged, Catch::Contains("bad key Bearer [redacted]"));
  for (const std::string& leak : {key, key.substr(0, 14)}) {
    CHECK_THAT(logged, !Catch::Contains(leak));
    for (const auto& f : files_under(dir / "cache")) CHECK_THAT(pizza::read_file(f), !Catch::Contains(leak));
  }
}
