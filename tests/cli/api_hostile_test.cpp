// `pizza api` against hostile servers, end to end: a key echoed back in every field it could
// hide in, an endless body, an unwritable cache. A LoopbackServer answers chat completions
// with "echo:<prompt>" (one token, logprob -0.5, itself as the only alternative), rewritten by
// each test.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <filesystem>
#include <functional>
#include <string>

#include "cli_helpers.h"
#include "support/loopback_server.h"
#include "support/paths.h"
#include "util/file.h"
#include "util/json_writer.h"

using namespace pizza::test;
namespace fs = std::filesystem;

namespace {

const std::string kKey = "sk-SENTINEL-0123456789abcdef";

// (request number, Authorization header) -> a body to send instead of the normal answer, or "".
using Rewrite = std::function<std::string(size_t, const std::string& auth, const std::string& model_field)>;

class HostileServer {
 public:
  explicit HostileServer(Rewrite rewrite, std::function<bool(size_t, httplib::Response&)> raw = {}) {
    http_.post("/v1/chat/completions", [rewrite, raw](size_t n, const httplib::Request& req, httplib::Response& res) {
      if (raw && raw(n, res)) return;
      simdjson::dom::parser parser;
      std::string_view prompt;
      if (parser.parse(req.body)["messages"].at(0)["content"].get(prompt)) prompt = "";
      const std::string auth = req.get_header_value("Authorization");
      std::string body = rewrite ? rewrite(n, auth, "fake-model") : "";
      if (body.empty()) {
        const std::string text = "echo:" + std::string(prompt);
        body = pizza::test::echo_chat_completion(text, "m-" + auth, std::string_view(auth));
      }
      res.set_content(body, "application/json");
    });
    http_.start();
  }
  std::string base_url() const { return http_.origin() + "/v1"; }
  size_t requests() const { return http_.request_count(); }

 private:
  LoopbackServer http_{8};
};

std::vector<std::string> api_args(const HostileServer& s, std::vector<std::string> extra) {
  std::vector<std::string> a{"api", "--base-url", s.base_url(), "--model", "fake-model", "--prompt", "Once upon a time",
                             "--unit", "word", "--concurrency", "1", "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST_CASE("api: a key the server echoes (200 error, cut body, model, system_fingerprint) reaches no stderr, cache or output") {
  // Request 0: a 200 error object holding the key; 1: a non-JSON body with the key across byte
  // 200; then answers whose model and system_fingerprint are the Authorization header.
  HostileServer server([](size_t n, const std::string& auth, const std::string&) -> std::string {
    if (n == 0) return R"({"error":{"message":"bad key )" + auth + R"("}})";
    if (n == 1) return std::string(190, ' ') + auth + " trailing";
    return "";
  });
  TempDir dir;
  const auto r = run_cli(api_args(server, {"--cache-dir", (dir / "cache").string(), "--format", "json", "--output",
                                           (dir / "out.json").string(), "--max-retries", "3"}),
                         "", {"OPENAI_API_KEY=" + kKey});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("bad key Bearer [redacted]"));  // the retried answers were logged
  const std::string out = pizza::read_file(dir / "out.json");
  CHECK_THAT(out, Catch::Contains("\"m-Bearer [redacted]\""));
  size_t files = 0;
  for (const std::string& leak : {kKey, kKey.substr(0, 14)}) {
    CHECK_THAT(r.err, !Catch::Contains(leak));
    CHECK_THAT(r.out, !Catch::Contains(leak));
    CHECK_THAT(out, !Catch::Contains(leak));
    for (const auto& e : fs::recursive_directory_iterator(dir / "cache")) {
      if (!e.is_regular_file()) continue;
      ++files;
      CHECK_THAT(pizza::read_file(e.path()), !Catch::Contains(leak));
    }
  }
  CHECK(files > 0);
}

TEST_CASE("api: an unwritable cache (a file in the way, a path under a file) warns once and the run succeeds") {
  HostileServer server({});
  TempDir dir;
  pizza::write_file_atomic(dir / "file", "in the way");
  for (const fs::path& cache : {dir / "file", dir / "file" / "sub"}) {
    const auto r = run_cli(api_args(server, {"--cache-dir", cache.string(), "--format", "json"}));
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("echo:Once upon a time"));
    const size_t at = r.err.find("continuing without it");
    CHECK(at != std::string::npos);
    CHECK(r.err.find("continuing without it", at + 1) == std::string::npos);
  }
}

TEST_CASE("api: an endless response body is cut at --max-response-bytes and the run exits 1 with one line") {
  HostileServer server({}, [](size_t, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [](size_t offset, httplib::DataSink& sink) {
      static const std::string chunk(size_t{1} << 16, ' ');
      if (offset >= (size_t{64} << 20)) {  // bounded: a client without a cap still ends
        sink.done();
        return true;
      }
      return sink.write(chunk.data(), chunk.size());
    });
    return true;
  });
  const auto r = run_cli(api_args(server, {"--no-cache", "--max-response-bytes", "100000"}));
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("larger than --max-response-bytes 100000 bytes") && Catch::Contains(server.base_url()));
  CHECK(server.requests() == 1);  // not retried
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("api: --max-wait and --max-response-bytes are validated") {
  HostileServer server({});
  CHECK_THAT(run_cli(api_args(server, {"--no-cache", "--max-wait", "-1"})).err, Catch::Contains("--max-wait"));
  CHECK_THAT(run_cli(api_args(server, {"--no-cache", "--max-response-bytes", "0"})).err,
             Catch::Contains("--max-response-bytes must be positive"));
  CHECK(server.requests() == 0);
}
