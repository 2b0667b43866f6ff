#include "api/request.h"
#include "util/error.h"

#include <catch2/catch.hpp>

using namespace pizza::api;

namespace {

CompletionRequest make_request(Endpoint endpoint, std::string model, std::string prompt, int64_t max_tokens) {
  CompletionRequest r;
  r.endpoint = endpoint;
  r.model = std::move(model);
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  return r;
}

}  // namespace

// Expected bodies are written out by hand: keys sorted, compact, numbers shortest.
TEST_CASE("request: chat body is canonical", "[api]") {
  CompletionRequest r;
  r.model = "gpt-4o-mini";
  r.prompt = "Say \"hi\"\n";
  r.max_tokens = 8;
  r.seed = 7;
  CHECK(serialize_body(r) ==
        R"({"logprobs":true,"max_completion_tokens":8,"messages":[{"content":"Say \"hi\"\n","role":"user"}],)"
        R"("model":"gpt-4o-mini","seed":7,"temperature":0,"top_logprobs":20})");
  r.legacy_max_tokens = true;
  r.seed.reset();
  r.top_logprobs = 5;
  CHECK(serialize_body(r) ==
        R"({"logprobs":true,"max_tokens":8,"messages":[{"content":"Say \"hi\"\n","role":"user"}],)"
        R"("model":"gpt-4o-mini","temperature":0,"top_logprobs":5})");
}

TEST_CASE("request: a system message goes before the user's, on chat only", "[api]") {
  CompletionRequest r;
  r.model = "m";
  r.prompt = "Once upon";
  r.system = "Be brief.";
  r.max_tokens = 4;
  CHECK(serialize_body(r) ==
        R"({"logprobs":true,"max_completion_tokens":4,"messages":[{"content":"Be brief.","role":"system"},)"
        R"({"content":"Once upon","role":"user"}],"model":"m","temperature":0,"top_logprobs":20})");
  r.endpoint = Endpoint::Completions;
  CHECK_THROWS_WITH(serialize_body(r), Catch::Contains("--endpoint chat"));
}

TEST_CASE("request: completions body uses max_tokens, integer logprobs and echo", "[api]") {
  CompletionRequest r;
  r.endpoint = Endpoint::Completions;
  r.model = "m";
  r.prompt = "The cat";
  r.max_tokens = 4;
  r.top_logprobs = 5;
  r.echo = true;
  r.temperature = 0.25;
  CHECK(serialize_body(r) ==
        R"({"echo":true,"logprobs":5,"max_tokens":4,"model":"m","prompt":"The cat","temperature":0.25})");
  r.logprobs = false;
  r.echo = false;
  CHECK(serialize_body(r) == R"({"max_tokens":4,"model":"m","prompt":"The cat","temperature":0.25})");
  CHECK(endpoint_path(Endpoint::Completions) == "/completions");
  CHECK(endpoint_path(Endpoint::Chat) == "/chat/completions");
}

TEST_CASE("request: extra_body is merged canonically and overrides", "[api]") {
  CompletionRequest r = make_request(Endpoint::Completions, "m", "p", 1);
  r.logprobs = false;
  // Keys out of order, nested object, a float written long-hand, and an override of model.
  r.extra_body = R"({ "z": {"b": 1.50, "a": [true, null, -2]}, "cache_prompt": false, "model": "other" })";
  CHECK(
      serialize_body(r) ==
      R"({"cache_prompt":false,"max_tokens":1,"model":"other","prompt":"p","temperature":0,"z":{"a":[true,null,-2],"b":1.5}})");
  // Same content, different spelling: identical bytes (the cache key depends on this).
  CompletionRequest r2 = r;
  r2.extra_body = R"({"model":"other","cache_prompt":false,"z":{"a":[true,null,-2],"b":15e-1}})";
  CHECK(serialize_body(r2) == serialize_body(r));
}

TEST_CASE("request: bad input is a clear error", "[api]") {
  CompletionRequest r;
  r.model = "m";
  r.extra_body = "[1,2]";
  CHECK_THROWS_WITH(serialize_body(r), Catch::Contains("must be a JSON object"));
  r.extra_body = "{bad";
  CHECK_THROWS_AS(serialize_body(r), pizza::InputError);
  r.extra_body.clear();
  r.echo = true;
  CHECK_THROWS_WITH(serialize_body(r), Catch::Contains("completions endpoint"));
}

TEST_CASE("request: canonical_json sorts keys and keeps integers", "[api]") {
  CHECK(canonical_json(R"({"b":[3, 2.0, 18446744073709551615],"a":"\u00e9"})", "x") ==
        "{\"a\":\"\xc3\xa9\",\"b\":[3,2,18446744073709551615]}");
}
