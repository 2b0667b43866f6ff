// Helpers for the `pizza serve` tests: an in-process server on a free loopback port with
// stories260K, an HTTP client call, parsed JSON documents and a JSON-shape checker.
#pragma once

// libtorch first: its glog headers define CHECK, which must not replace Catch's CHECK (the
// last definition wins, and catch.hpp's include guard keeps it from being redefined later).
#include <torch/torch.h>

#include <httplib.h>
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "serve/server.h"
#include "support/paths.h"
#include "support/sse.h"

namespace pizza::test {

// stories260K on the CPU in float32, one thread (deterministic and light on shared machines).
std::unique_ptr<LanguageModel> load_stories();

// A Server running on its own thread; stopped and joined on destruction.
class RunningServer {
 public:
  explicit RunningServer(const LanguageModel& lm, serve::ServeOptions opts = {});
  ~RunningServer();
  int port() const { return server_->port(); }
  serve::Server& server() { return *server_; }

 private:
  std::unique_ptr<serve::Server> server_;
  std::thread thread_;
};

// status -1 (body: the reason) when no HTTP response came back. Safe to call from any thread.
struct HttpReply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  // "" when absent.
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};
HttpReply post(int port, const std::string& path, const std::string& body);
HttpReply get(int port, const std::string& path);

// A streamed response as an SDK reads one: the body is fed to the SSE parser as it arrives.
struct StreamReply {
  int status = 0;        // -1: no HTTP response (`body`: the reason)
  std::string body;      // every byte received (an error's JSON when the server did not stream)
  httplib::Headers headers;
  std::vector<SseEvent> events;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};
// POSTs `body` and reads the answer as it arrives; when `keep_reading` returns false for an
// event the client closes the connection there, as a user stopping a chat UI does. Safe to call
// from any thread.
StreamReply post_stream(int port, const std::string& path, const std::string& body,
                        const std::function<bool(const SseEvent&)>& keep_reading = {});

// A parsed JSON document (the parser owns the memory the root refers to).
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
};
std::unique_ptr<Json> parse_json(const std::string& text);

// Checks `value` against `shape`, a JSON description written in the test: an object lists
// required keys with their shapes (extra keys are allowed), a one-element array means "array
// whose every element has this shape", and a string names the accepted types separated by '|'
// (string, integer, number, boolean, null, object, array). Returns "" when it matches, else a
// path and reason, e.g. "choices[0].message.content: expected string, got null".
std::string shape_mismatch(simdjson::dom::element value, const std::string& shape);

// The OpenAI error object every failure must carry.
inline constexpr const char* kErrorShape =
    R"({"error": {"message": "string", "type": "string", "param": "string|null", "code": "string|null"}})";

}  // namespace pizza::test
