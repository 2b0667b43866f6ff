#include "api/response.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace pizza::api;

// Response bodies below are written for these tests, shaped as the published API references
// document them (OpenAI chat and legacy completions, vLLM's OpenAI-compatible server,
// llama.cpp's server README); the expected values are read off the bodies by hand.

namespace {

CompletionRequest chat_request() {
  CompletionRequest r;
  r.model = "gpt-4o-mini";
  r.prompt = "Greet me";
  return r;
}

CompletionRequest completions_request(std::string prompt, bool echo) {
  CompletionRequest r;
  r.endpoint = Endpoint::Completions;
  r.model = "legacy-model";
  r.prompt = std::move(prompt);
  r.echo = echo;
  r.top_logprobs = 2;
  return r;
}

}  // namespace

TEST_CASE("response: OpenAI chat completion", "[api]") {
  const char* body =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
    "system_fingerprint":"fp_44709d6fcb",
    "choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","refusal":null},"finish_reason":"stop",
      "logprobs":{"content":[
        {"token":"Hi","logprob":-0.01,"bytes":[72,105],"top_logprobs":[
          {"token":"Hello","logprob":-4.6,"bytes":[72,101,108,108,111]},{"token":"Hi","logprob":-0.01,"bytes":[72,105]}]},
        {"token":"!","logprob":-0.5,"bytes":[33],"top_logprobs":[{"token":"!","logprob":-0.5,"bytes":[33]}]}],
      "refusal":null}}],
    "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}})";
  Completion c = parse_completion(body, chat_request());
  CHECK(c.text == "Hi!");
  CHECK(c.model == "gpt-4o-mini-2024-07-18");
  CHECK(c.system_fingerprint == "fp_44709d6fcb");
  CHECK(c.finish_reason == "stop");
  CHECK(c.usage.prompt == 9);
  CHECK(c.usage.completion == 2);
  CHECK(c.prompt_tokens.empty());
  REQUIRE(c.tokens.size() == 2);
  CHECK(c.tokens[0].token == "Hi");
  CHECK(c.tokens[0].logprob == -0.01);
  CHECK(c.tokens[0].bytes == std::vector<uint8_t>{72, 105});
  REQUIRE(c.tokens[0].top.size() == 2);
  CHECK(c.tokens[0].top[0].token == "Hi");  // sorted, most likely first
  CHECK(c.tokens[0].top[1].token == "Hello");
  CHECK(c.tokens[0].top[1].logprob == -4.6);
  CHECK(c.tokens[1].token == "!");
}

TEST_CASE("response: chat tokens that split a UTF-8 character are rebuilt from bytes", "[api]") {
  // U+65E5 is E6 97 A5; OpenAI shows partial characters as "bytes:\xNN" strings.
  const char* body = R"({"model":"gpt-4o","choices":[{"message":{"content":"\u65e5"},"finish_reason":"stop",
    "logprobs":{"content":[{"token":"bytes:\\xe6\\x97","logprob":-0.1,"bytes":[230,151],"top_logprobs":[]},
                           {"token":"bytes:\\xa5","logprob":-0.2,"bytes":[165],"top_logprobs":[]}]}}]})";
  CompletionRequest no_alternatives = chat_request();  // OpenAI's empty lists answer top_logprobs: 0
  no_alternatives.top_logprobs = 0;
  Completion c = parse_completion(body, no_alternatives);
  REQUIRE(c.tokens.size() == 2);
  CHECK(c.tokens[0].token == "\xe6\x97");
  CHECK(c.tokens[1].token == "\xa5");
  CHECK(c.tokens[0].token + c.tokens[1].token == c.text);
}

TEST_CASE("response: OpenAI legacy completions with echo split at text_offset", "[api]") {
  const char* body = R"({"id":"cmpl-1","object":"text_completion","model":"davinci-002",
    "choices":[{"text":"The cat sat down","index":0,"finish_reason":"length",
      "logprobs":{"tokens":["The"," cat"," sat"," down"],"token_logprobs":[null,-5.2,-2.1,-0.7],
        "top_logprobs":[null,{" cat":-5.2," dog":-4.9},{" sat":-2.1," was":-1.8},{" down":-0.7}],
        "text_offset":[0,3,7,11]}}],
    "usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}})";
  Completion c = parse_completion(body, completions_request("The cat", true));
  CHECK(c.text == " sat down");  // the echoed prompt is removed
  REQUIRE(c.prompt_tokens.size() == 2);
  CHECK(c.prompt_tokens[0].token == "The");
  CHECK(std::isnan(c.prompt_tokens[0].logprob));  // the first token has no logprob
  CHECK(c.prompt_tokens[0].top.empty());
  CHECK(c.prompt_tokens[1].logprob == -5.2);
  REQUIRE(c.prompt_tokens[1].top.size() == 2);
  CHECK(c.prompt_tokens[1].top[0].token == " dog");
  CHECK(c.prompt_tokens[1].top[0].logprob == -4.9);
  REQUIRE(c.tokens.size() == 2);
  CHECK(c.tokens[0].token == " sat");
  CHECK(c.tokens[0].top[0].token == " was");
  CHECK(c.tokens[1].token == " down");
  CHECK(c.tokens[1].logprob == -0.7);
  CHECK(c.usage.completion == 2);
}

TEST_CASE("response: legacy echo counts text_offset in characters, not bytes", "[api]") {
  // "café au" is 7 characters but 8 bytes: the token at offset 7 is generated, not prompt.
  const char* body = R"({"choices":[{"text":"café au lait","logprobs":{"tokens":["caf","é"," au"," lait"],
    "token_logprobs":[null,-1,-2,-3],"top_logprobs":[null,null,null,null],"text_offset":[0,3,4,7]}}]})";
  Completion c = parse_completion(body, completions_request("café au", true));
  CHECK(c.prompt_tokens.size() == 3);
  REQUIRE(c.tokens.size() == 1);
  CHECK(c.tokens[0].token == " lait");
  CHECK(c.text == " lait");
}

TEST_CASE("response: legacy completions without echo or text_offset", "[api]") {
  const char* body = R"({"choices":[{"text":" sat","finish_reason":"length",
    "logprobs":{"tokens":[" sat"],"token_logprobs":[-2.1],"top_logprobs":[{" sat":-2.1," is":-1.9}]}}]})";
  Completion c = parse_completion(body, completions_request("The cat", false));
  CHECK(c.prompt_tokens.empty());
  REQUIRE(c.tokens.size() == 1);
  CHECK(c.tokens[0].top.size() == 2);
  CHECK(c.tokens[0].top[0].token == " is");
  // With echo and no text_offset the split falls back to the prompt's byte length.
  const char* echoed = R"({"choices":[{"text":"The cat sat",
    "logprobs":{"tokens":["The"," cat"," sat"],"token_logprobs":[null,-5,-2]}}]})";
  Completion e = parse_completion(echoed, completions_request("The cat", true));
  CHECK(e.prompt_tokens.size() == 2);
  REQUIRE(e.tokens.size() == 1);
  CHECK(e.tokens[0].token == " sat");
}

TEST_CASE("response: vLLM echo with prompt_logprobs", "[api]") {
  const char* body = R"({"id":"cmpl-v","object":"text_completion","model":"meta-llama/Llama-3.2-1B",
    "choices":[{"index":0,"text":"The cat sat","finish_reason":"length","stop_reason":null,
      "logprobs":{"text_offset":[0,3,7],"token_logprobs":[null,-6.1,-1.3],"tokens":["The"," cat"," sat"],
        "top_logprobs":[null,{" cat":-6.1," first":-2.0},{" sat":-1.3," is":-1.6}]},
      "prompt_logprobs":[null,{"3797":{"logprob":-6.1,"rank":40,"decoded_token":" cat"},
                               "1176":{"logprob":-2.0,"rank":1,"decoded_token":" first"},
                               "5679":{"logprob":-3.0,"rank":2,"decoded_token":" dog"}}]}],
    "usage":{"prompt_tokens":2,"total_tokens":3,"completion_tokens":1}})";
  Completion c = parse_completion(body, completions_request("The cat", true));
  CHECK(c.text == " sat");
  REQUIRE(c.prompt_tokens.size() == 2);
  CHECK(c.prompt_tokens[1].token == " cat");
  CHECK(c.prompt_tokens[1].logprob == -6.1);
  // Alternatives from prompt_logprobs (three of them, by decoded_token), most likely first.
  REQUIRE(c.prompt_tokens[1].top.size() == 3);
  CHECK(c.prompt_tokens[1].top[0].token == " first");
  CHECK(c.prompt_tokens[1].top[1].token == " dog");
  CHECK(c.prompt_tokens[1].top[2].token == " cat");
  REQUIRE(c.tokens.size() == 1);
  CHECK(c.tokens[0].token == " sat");
  CHECK(c.tokens[0].top[0].token == " sat");
}

TEST_CASE("response: llama.cpp completions (content list, -3.4e38, U+FFFD with bytes)", "[api]") {
  // "é" is C3 A9; llama.cpp sends each byte as its own token shown as U+FFFD. echo is ignored.
  const char* body = R"({"choices":[{"text":"é!","index":0,"finish_reason":"length","logprobs":{"content":[
      {"id":2634,"token":"\ufffd","bytes":[195],"logprob":-0.2,"top_logprobs":[
        {"id":2634,"token":"\ufffd","bytes":[195],"logprob":-0.2},
        {"id":0,"token":"!","bytes":[33],"logprob":-3.4028234663852886e+38}]},
      {"id":2635,"token":"\ufffd","bytes":[169],"logprob":-0.01,"top_logprobs":[
        {"id":2635,"token":"\ufffd","bytes":[169],"logprob":-0.01}]},
      {"id":0,"token":"!","bytes":[33],"logprob":-0.3,"top_logprobs":[{"id":0,"token":"!","bytes":[33],"logprob":-0.3}]}]}}],
    "created":1,"model":"gpt-3.5-turbo","system_fingerprint":"b4000-abc","object":"text_completion",
    "usage":{"completion_tokens":3,"prompt_tokens":2,"total_tokens":5},"id":"chatcmpl-x"})";
  Completion c = parse_completion(body, completions_request("Hi", true));
  CHECK(c.prompt_tokens.empty());
  REQUIRE(c.tokens.size() == 3);
  CHECK(c.tokens[0].token == "\xc3");
  CHECK(c.tokens[1].token == "\xa9");
  CHECK(c.tokens[0].token + c.tokens[1].token + c.tokens[2].token == c.text);
  REQUIRE(c.tokens[0].top.size() == 2);
  CHECK(std::isinf(c.tokens[0].top[1].logprob));
  CHECK(c.tokens[0].top[1].logprob < 0);
  CHECK(c.system_fingerprint == "b4000-abc");
}

TEST_CASE("response: errors are clear", "[api]") {
  // A reasoning model answers without logprobs.
  const char* no_logprobs =
      R"({"model":"o1","choices":[{"message":{"content":"4"},"logprobs":null,"finish_reason":"stop"}]})";
  CHECK_THROWS_WITH(
      parse_completion(no_logprobs, chat_request()),
      Catch::Contains("the server returned no logprobs; it may not support them (e.g. reasoning models)"));
  CompletionRequest plain = chat_request();
  plain.logprobs = false;
  CHECK(parse_completion(no_logprobs, plain).text == "4");

  CHECK_THROWS_WITH(parse_completion("<html>502 Bad Gateway</html>", chat_request()),
                    Catch::Contains("not JSON") && Catch::Contains("<html>502 Bad Gateway"));
  CHECK_THROWS_WITH(parse_completion(R"({"choices":[]})", chat_request()), Catch::Contains("no choices"));
  const char* error =
      R"({"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}})";
  CHECK_THROWS_WITH(parse_completion(error, chat_request()),
                    Catch::Contains("The model `x` does not exist") && Catch::Contains("model_not_found"));
}

TEST_CASE("response: error objects and failure descriptions", "[api]") {
  auto e = parse_error_object(
      R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota","param":null}})");
  REQUIRE(e);
  CHECK(e->code == "insufficient_quota");
  CHECK(parse_error_object(R"({"error":{"message":"m","code":429}})")->code == "429");
  CHECK(parse_error_object(R"({"error":"plain text"})")->message == "plain text");
  CHECK_FALSE(parse_error_object("not json"));
  CHECK_FALSE(parse_error_object(R"({"choices":[]})"));

  std::string long_body(500, 'x');
  std::string d = describe_http_failure(502, long_body, "");
  CHECK(d == "HTTP 502: " + std::string(200, 'x') + "...");
  CHECK(describe_http_failure(400, "bad key sk-secret here", "sk-secret") ==
        "HTTP 400: bad key [redacted] here");
  CHECK(redact("a-k-a-k", "k") == "a-[redacted]-a-[redacted]");
}

TEST_CASE("response: log-probabilities must be numbers <= 0 and alternatives present", "[api]") {
  // One chat token whose logprob (and its one alternative's) is `lp`, with `top` as top_logprobs.
  auto body = [](const std::string& lp, const std::string& top) {
    return R"({"model":"m","choices":[{"message":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":)" +
           lp + R"(,"top_logprobs":)" + top + "}]}}]}";
  };
  const std::string good_top = R"([{"token":"Hi","logprob":-0.1}])";
  CHECK(parse_completion(body("-0.1", good_top), chat_request()).tokens.at(0).logprob == -0.1);
  CHECK(parse_completion(body("0.00001", good_top), chat_request()).tokens.at(0).logprob == 0.0);  // float error
  for (const std::string lp : {R"("NaN")", R"("abc")", "true"})
  {
    CHECK_THROWS_AS(parse_completion(body(lp, good_top), chat_request()), MalformedResponse);
    CHECK_THROWS_WITH(parse_completion(body(lp, good_top), chat_request()),
                      Catch::Contains("choices[0].logprobs.content[0].logprob = " + lp + ", not a number"));
  }
  CHECK_THROWS_WITH(parse_completion(body("null", good_top), chat_request()),
                    Catch::Contains("no log-probability for generated token 0") &&
                        Catch::Contains("choices[0].logprobs.content[0] is null or missing"));
  for (const std::string lp : {"5.0", "1e300"})
    CHECK_THROWS_WITH(parse_completion(body(lp, good_top), chat_request()),
                      Catch::Contains("choices[0].logprobs.content[0].logprob = " + lp.substr(0, 2)) &&
                          Catch::Contains("above 0"));
  CHECK_THROWS_WITH(parse_completion(body("-0.1", R"([{"token":"Hi","logprob":"x"}])"), chat_request()),
                    Catch::Contains("choices[0].logprobs.content[0].top_logprobs[0].logprob"));
  // 1e999 is out of every double's range: the body is refused as JSON, never read as infinity.
  CHECK_THROWS_AS(parse_completion(body("1e999", good_top), chat_request()), MalformedResponse);
  CHECK_THROWS_WITH(parse_completion(body("1e999", good_top), chat_request()), Catch::Contains("not JSON"));
  // top_logprobs were asked for: an empty list would score every perturbation as a total miss.
  CHECK_THROWS_WITH(parse_completion(body("-0.1", "[]"), chat_request()),
                    Catch::Contains("no top_logprobs for generated token 0") && Catch::Contains("20 were asked for"));
  CompletionRequest none = chat_request();
  none.top_logprobs = 0;
  CHECK(parse_completion(body("-0.1", "[]"), none).tokens.at(0).top.empty());

  // Legacy completions: token_logprobs and the {token: logprob} maps are checked as well.
  const char* legacy = R"({"choices":[{"text":" a","logprobs":{"tokens":[" a"],"token_logprobs":[2.5],
      "top_logprobs":[{" a":-0.1}]}}]})";
  CHECK_THROWS_WITH(parse_completion(legacy, completions_request("x", false)),
                    Catch::Contains("choices[0].logprobs.token_logprobs[0] = 2.5"));
  const char* legacy_top = R"({"choices":[{"text":" a","logprobs":{"tokens":[" a"],"token_logprobs":[-0.1],
      "top_logprobs":[{" a":"NaN"}]}}]})";
  CHECK_THROWS_WITH(parse_completion(legacy_top, completions_request("x", false)),
                    Catch::Contains(R"(choices[0].logprobs.top_logprobs[0][" a"] = "NaN")"));
}

TEST_CASE("response: snippets are redacted before they are cut", "[api]") {
  const std::string key = "sk-SENTINEL-0123456789abcdef";
  // The key starts at byte 190: cutting at 200 first would leave "sk-SENTINEL" in the message.
  const std::string body = std::string(190, 'x') + key + " trailing";
  for (const auto& text : {snippet(body, key), describe_http_failure(500, body, key),
                           describe_http_failure(500, R"({"error":{"message":")" + body + R"("}})", key)}) {
    CHECK_THAT(text, Catch::Contains("[redacted]") && !Catch::Contains("sk-SENTINEL"));
  }
  CHECK(snippet("a\nb", "") == "a b");
  CHECK(snippet("\xc3\xa9\xc3\xa9", "", 3) == "\xc3\xa9...");  // never cut inside a character
}
