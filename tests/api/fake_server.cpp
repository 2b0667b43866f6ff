#include "api/fake_server.h"

#include "support/loopback_server.h"
#include "util/json_writer.h"

#include <simdjson.h>

#include <chrono>
#include <cmath>

namespace pizza::test {

namespace {

// The prompt of a request body: "prompt" or the first message's content.
std::string prompt_of(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view s;
  if (parser.parse(body).get(doc)) return "";
  if (!doc["prompt"].get(s)) return std::string(s);
  if (!doc["messages"].at(0)["content"].get(s)) return std::string(s);
  return "";
}

// A chat-style answer: text "echo:<prompt>" as one token with logprob -0.5 (its own only
// alternative).
std::string answer(const std::string& request_body, bool with_logprobs) {
  std::string text = "echo:" + prompt_of(request_body);
  JsonWriter w;
  w.begin_object().field("model", "fake-model").field("system_fingerprint", "fp_fake");
  w.key("choices").begin_array().begin_object().field("index", 0).field("finish_reason", "length");
  w.key("message").begin_object().field("role", "assistant").field("content", text).end_object();
  w.key("logprobs");
  if (with_logprobs) {
    w.begin_object().key("content").begin_array().begin_object().field("token", text).field("logprob", -0.5);
    w.key("top_logprobs").begin_array().begin_object().field("token", text).field("logprob", -0.5).end_object();
    w.end_array().end_object().end_array().end_object();
  } else {
    w.null();
  }
  w.end_object().end_array();
  w.key("usage").begin_object().field("prompt_tokens", 3).field("completion_tokens", 1).end_object();
  w.end_object();
  return w.take();
}

std::string error_json(const std::string& message, const std::string& type, const std::string& code) {
  JsonWriter w;
  w.begin_object()
      .key("error")
      .begin_object()
      .field("message", message)
      .field("type", type)
      .field("code", code);
  w.end_object().end_object();
  return w.take();
}

}  // namespace

struct FakeServer::Handler {
  static void serve(FakeServer& s, size_t n, const httplib::Request& req, httplib::Response& res) {
    if (s.config_.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(s.config_.sleep_ms));
    std::optional<Fault> fault = s.config_.fault_for ? s.config_.fault_for(n) : std::nullopt;
    if (fault) ++s.faults_;
    respond(s, req, res, fault);
    if (!fault && s.config_.rewrite)
      res.set_content(s.config_.rewrite(n, res.body, req.get_header_value("Authorization")), "application/json");
  }

  static void respond(FakeServer& s, const httplib::Request& req, httplib::Response& res,
                      std::optional<Fault> fault) {
    const std::string ok = answer(req.body, true);
    auto error = [&res](int status, const std::string& body) {
      res.status = status;
      res.set_content(body, "application/json");
    };
    if (!fault) return error(200, ok);
    switch (*fault) {
      case Fault::RateLimit0:
      case Fault::RateLimit1:
        res.set_header("Retry-After", *fault == Fault::RateLimit0 ? "0" : "1");
        return error(429, error_json("Rate limit reached for requests", "requests", "rate_limit_exceeded"));
      case Fault::RetryAfterMs:
        res.set_header("retry-after-ms", "250");
        return error(429, error_json("Rate limit reached for requests", "requests", "rate_limit_exceeded"));
      case Fault::RetryAfterFarDate:
        res.set_header("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT");
        return error(429, error_json("Rate limit reached for requests", "requests", "rate_limit_exceeded"));
      case Fault::Error500: return error(500, error_json("The server had an error", "server_error", ""));
      case Fault::Error503: return error(503, "upstream unavailable");
      case Fault::Slow:
        std::this_thread::sleep_for(std::chrono::milliseconds(s.config_.slow_ms));
        return error(200, ok);
      case Fault::Drop: {
        // Content-Length promises the whole body; half is sent, then the provider fails,
        // which makes httplib close the connection.
        auto body = std::make_shared<std::string>(ok);
        res.set_content_provider(body->size(), "application/json",
                                 [body](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset > 0) return false;
                                   sink.write(body->data(), body->size() / 2);
                                   return true;
                                 });
        return;
      }
      case Fault::Truncated: return error(200, ok.substr(0, ok.size() / 2));
      case Fault::Quota:
        return error(
            429, error_json("You exceeded your current quota, please check your plan and billing details.",
                            "insufficient_quota", "insufficient_quota"));
      case Fault::Unauthorized:
        return error(401, error_json("Incorrect API key provided: " + req.get_header_value("Authorization"),
                                     "invalid_request_error", "invalid_api_key"));
      case Fault::EchoKeyNotJson:
        res.status = 400;
        res.set_content("bad request; you sent " + req.get_header_value("Authorization"), "text/plain");
        return;
      case Fault::NoLogprobs: return error(200, answer(req.body, false));
      case Fault::RateLimitHeaders:
        res.set_header("x-ratelimit-remaining-requests", "0");
        res.set_header("x-ratelimit-reset-requests", "2s");
        return error(200, ok);
      case Fault::RateLimitHeadersLong:
        res.set_header("x-ratelimit-remaining-requests", "0");
        res.set_header("x-ratelimit-reset-requests", "10s");
        return error(200, ok);
      case Fault::Endless:
        // Chunked, 1 MiB of JSON-looking whitespace at a time until the client hangs up (or
        // 256 MiB, so a client without a cap cannot keep the test running for ever).
        res.set_chunked_content_provider("application/json", [](size_t offset, httplib::DataSink& sink) {
          static const std::string chunk(size_t{1} << 20, ' ');
          if (offset >= (size_t{256} << 20)) {
            sink.done();
            return true;
          }
          return sink.write(chunk.data(), chunk.size());
        });
        return;
    }
  }
};

FakeServer::FakeServer(Config config)
    // More workers than the client's widest window (and the slow faults), so the tests measure
    // the client, not the server's pool.
    : config_(std::move(config)), http_(std::make_unique<LoopbackServer>(32)) {
  auto handler = [this](size_t n, const httplib::Request& req, httplib::Response& res) {
    Handler::serve(*this, n, req, res);
  };
  http_->post("/v1/chat/completions", handler);
  http_->post("/v1/completions", handler);
  http_->start();
}

FakeServer::~FakeServer() = default;

std::string FakeServer::base_url() const { return http_->origin() + "/v1"; }

size_t FakeServer::requests() const { return http_->request_count(); }

size_t FakeServer::max_in_flight() const { return http_->max_in_flight(); }

std::vector<std::string> FakeServer::authorizations() const {
  std::vector<std::string> out;
  for (const auto& r : http_->requests()) out.push_back(r.header("Authorization"));
  return out;
}

std::function<std::optional<Fault>(size_t)> FakeServer::every(double fraction, std::vector<Fault> kinds) {
  // Request n is faulty when floor((n+1)f) > floor(nf): exactly floor(N f) of the first N.
  return [fraction, kinds](size_t n) -> std::optional<Fault> {
    auto before = static_cast<size_t>(std::floor(static_cast<double>(n) * fraction));
    auto after = static_cast<size_t>(std::floor(static_cast<double>(n + 1) * fraction));
    if (after == before) return std::nullopt;
    return kinds[before % kinds.size()];
  };
}

std::function<std::optional<Fault>(size_t)> FakeServer::first(size_t count, Fault fault) {
  return [count, fault](size_t n) -> std::optional<Fault> {
    if (n < count) return fault;
    return std::nullopt;
  };
}

}  // namespace pizza::test
