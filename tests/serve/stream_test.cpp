// `pizza serve` streaming (`stream: true`) with stories260K, read as the OpenAI SDKs read it: an
// SSE parser fed the bytes as they arrive (tests/support/sse.h), and curl -N. The streamed text
// and log-probs equal the non-streamed answer; chunk shapes and order follow OpenAI's; a client
// that goes away stops its own generation; stop strings, n, seed and top_p behave as documented.
// libtorch first: its glog headers define CHECK, which must not replace Catch's CHECK (the
// last definition wins, and catch.hpp's include guard keeps it from being redefined later).
#include <torch/torch.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <stop_token>
#include <thread>

#include "serve/batch.h"
#include "serve_support.h"
#include "util/json_writer.h"
#include "util/utf8.h"

using namespace pizza;
using test::parse_json;
using test::post;
using test::post_stream;
using test::shape_mismatch;

namespace {

constexpr const char* kChatChunkShape = R"({
  "id": "string", "object": "string", "created": "integer", "model": "string", "system_fingerprint": "string",
  "choices": [{"index": "integer", "delta": "object", "logprobs": "object|null", "finish_reason": "string|null"}]})";

constexpr const char* kCompletionChunkShape = R"({
  "id": "string", "object": "string", "created": "integer", "model": "string", "system_fingerprint": "string",
  "choices": [{"index": "integer", "text": "string", "logprobs": "object|null", "finish_reason": "string|null"}]})";

std::string_view str(simdjson::dom::element e) { return std::string_view(e); }

bool has(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element v;
  return !obj.get_object()[key].get(v);
}

void require_shape(simdjson::dom::element v, const std::string& shape) {
  auto m = shape_mismatch(v, shape);
  INFO("shape: " << m);
  REQUIRE(m.empty());
}

std::string chat_body(const std::string& content, const std::string& extra) {
  return R"({"model": "stories260K", "messages": [{"role": "user", "content": ")" + json_escape(content) + R"("}])" +
         extra + "}";
}

std::string completion_body(const std::string& prompt, const std::string& extra) {
  return R"({"model": "stories260K", "prompt": ")" + json_escape(prompt) + R"(")" + extra + "}";
}

// A stream as a client sees it: its JSON chunks, in order, which must be followed by [DONE].
struct Stream {
  std::vector<std::unique_ptr<test::Json>> chunks;
  simdjson::dom::element chunk(size_t i) const { return chunks[i]->root; }
};

Stream chunks_of(const test::StreamReply& r) {
  INFO("body: " << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "text/event-stream");
  REQUIRE(r.events.size() >= 2);
  CHECK(r.events.back().data == "[DONE]");
  Stream s;
  for (size_t i = 0; i + 1 < r.events.size(); ++i) {
    CHECK(r.events[i].type == "message");
    s.chunks.push_back(parse_json(r.events[i].data));
  }
  return s;
}

// What a streamed choice adds up to, and what its chunks must satisfy whatever the endpoint:
// one id, object and creation time throughout, the finish_reason on the last chunk of each
// choice, then (include_usage) one chunk with usage and no choices, and "usage": null on every
// other chunk exactly when usage was asked for.
struct Streamed {
  std::string text;
  std::vector<std::string> logprobs;  // per token, as the JSON the server wrote (chat: content[] entries)
  std::string finish_reason;
  std::optional<int64_t> completion_tokens;  // from the usage chunk
};

std::vector<Streamed> collect(const Stream& s, bool chat, bool include_usage, size_t n = 1) {
  const auto first = s.chunk(0);
  const std::string id(str(first["id"]));
  CHECK_THAT(id, Catch::StartsWith(chat ? "chatcmpl-" : "cmpl-"));
  std::vector<Streamed> out(n);
  std::vector<bool> finished(n);
  for (size_t i = 0; i < s.chunks.size(); ++i) {
    INFO("chunk " << i << ": " << simdjson::minify(s.chunk(i)));
    auto c = s.chunk(i);
    CHECK(str(c["id"]) == id);
    CHECK(str(c["object"]) == (chat ? "chat.completion.chunk" : "text_completion"));
    CHECK(int64_t(c["created"]) == int64_t(first["created"]));
    CHECK(str(c["model"]) == "stories260K");
    CHECK(has(c, "usage") == include_usage);
    auto choices = c["choices"].get_array().value();
    if (choices.size() == 0) {  // the usage chunk: last, after every choice finished
      REQUIRE(include_usage);
      CHECK(i + 1 == s.chunks.size());
      CHECK(std::all_of(finished.begin(), finished.end(), [](bool f) { return f; }));
      const int64_t prompt = c["usage"]["prompt_tokens"], completion = c["usage"]["completion_tokens"];
      CHECK(int64_t(c["usage"]["total_tokens"]) == prompt + completion);
      for (auto& o : out) o.completion_tokens = completion;
      continue;
    }
    require_shape(c, chat ? kChatChunkShape : kCompletionChunkShape);
    if (include_usage) CHECK(c["usage"].is_null());
    REQUIRE(choices.size() == 1);
    auto choice = choices.at(0);
    const auto index = static_cast<size_t>(int64_t(choice["index"]));
    REQUIRE(index < n);
    CHECK_FALSE(finished[index]);  // nothing after a choice's finish_reason
    auto& o = out[index];
    if (chat) {
      // The role comes first, once per choice; content after it.
      CHECK(has(choice["delta"], "role") == (i < n));
      if (i < n) CHECK(str(choice["delta"]["role"]) == "assistant");
      simdjson::dom::element content;
      if (!choice["delta"]["content"].get(content)) o.text += str(content);
      if (!choice["logprobs"].is_null())
        for (auto e : choice["logprobs"]["content"].get_array()) o.logprobs.push_back(simdjson::minify(e));
    } else {
      o.text += str(choice["text"]);
      if (!choice["logprobs"].is_null()) {
        auto lp = choice["logprobs"];
        auto tokens = lp["tokens"].get_array().value();
        for (size_t t = 0; t < tokens.size(); ++t)
          o.logprobs.push_back(simdjson::minify(tokens.at(t)) + " " + simdjson::minify(lp["token_logprobs"].at(t)) + " " +
                               simdjson::minify(lp["top_logprobs"].at(t)) + " " + simdjson::minify(lp["text_offset"].at(t)));
      }
    }
    if (!choice["finish_reason"].is_null()) {
      finished[index] = true;
      o.finish_reason = std::string(str(choice["finish_reason"]));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    INFO("choice " << i);
    CHECK(finished[i]);
  }
  return out;
}

// The same for a non-streamed answer's first choice.
Streamed answer(const test::HttpReply& r, bool chat) {
  INFO("body: " << r.body);
  REQUIRE(r.status == 200);
  auto j = parse_json(r.body);
  auto c = j->root["choices"].at(0);
  Streamed o;
  o.text = std::string(str(chat ? c["message"]["content"] : c["text"]));
  o.finish_reason = std::string(str(c["finish_reason"]));
  o.completion_tokens = int64_t(j->root["usage"]["completion_tokens"]);
  if (!c["logprobs"].is_null()) {
    if (chat) {
      for (auto e : c["logprobs"]["content"].get_array()) o.logprobs.push_back(simdjson::minify(e));
    } else {
      auto lp = c["logprobs"];
      auto tokens = lp["tokens"].get_array().value();
      for (size_t t = 0; t < tokens.size(); ++t)
        o.logprobs.push_back(simdjson::minify(tokens.at(t)) + " " + simdjson::minify(lp["token_logprobs"].at(t)) + " " +
                             simdjson::minify(lp["top_logprobs"].at(t)) + " " + simdjson::minify(lp["text_offset"].at(t)));
    }
  }
  return o;
}

std::string stream_flag(bool include_usage) {
  return include_usage ? R"(, "stream": true, "stream_options": {"include_usage": true})" : R"(, "stream": true)";
}

std::vector<int64_t> encode(const LanguageModel& lm, const std::string& text) {
  auto ids = lm.tokenizer().encode(text).ids();
  return {ids.begin(), ids.end()};
}

// A prompt whose greedy continuation runs to the end of stories260K's 512-token context without
// an end-of-story token (checked where it matters), so its generation takes a while.
constexpr const char* kLongPrompt = "Once upon a time";
constexpr const char* kLongTokens = "480";

}  // namespace

// The streamed and the non-streamed request run alone through the same code, so the log-probs
// are the same float32 numbers, written the same way: they are compared as JSON text.
TEST_CASE("streamed chat equals the non-streamed answer chunk by chunk") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  for (std::string prompt : {"Once upon a time", "The dog said", "Lily and Ben went to the park. They"}) {
    for (bool usage : {false, true}) {
      INFO("prompt: " << prompt << ", include_usage " << usage);
      const std::string extra = R"(, "temperature": 0, "max_tokens": 20, "logprobs": true, "top_logprobs": 3)";
      auto expected = answer(post(srv.port(), "/v1/chat/completions", chat_body(prompt, extra)), true);
      auto reply = post_stream(srv.port(), "/v1/chat/completions", chat_body(prompt, extra + stream_flag(usage)));
      auto got = collect(chunks_of(reply), true, usage).at(0);
      CHECK(got.text == expected.text);
      CHECK(got.finish_reason == expected.finish_reason);
      CHECK(got.logprobs == expected.logprobs);
      CHECK(got.logprobs.size() == 20);
      if (usage) CHECK(got.completion_tokens == expected.completion_tokens);
    }
  }
  // Without logprobs every chunk says "logprobs": null.
  auto s = chunks_of(post_stream(srv.port(), "/v1/chat/completions",
                                 chat_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 5, "stream": true)")));
  for (const auto& c : s.chunks) CHECK(c->root["choices"].at(0)["logprobs"].is_null());
}

TEST_CASE("streamed completions with echo and logprobs equal the non-streamed answer") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  for (std::string extra : {R"(, "logprobs": 2)", R"(, "logprobs": 2, "echo": true)", R"(, "echo": true)", ""}) {
    for (bool usage : {false, true}) {
      INFO("fields: " << extra << ", include_usage " << usage);
      const std::string body_extra = R"(, "temperature": 0, "max_tokens": 16)" + extra;
      auto expected = answer(post(srv.port(), "/v1/completions", completion_body("Sam and his dog", body_extra)), false);
      auto reply = post_stream(srv.port(), "/v1/completions", completion_body("Sam and his dog", body_extra + stream_flag(usage)));
      auto got = collect(chunks_of(reply), false, usage).at(0);
      CHECK(got.text == expected.text);
      CHECK(got.finish_reason == expected.finish_reason);
      // Token strings, log-probs, alternatives and text offsets (which run on across chunks).
      CHECK(got.logprobs == expected.logprobs);
      if (usage) CHECK(got.completion_tokens == expected.completion_tokens);
    }
  }
}

TEST_CASE("curl -N reads the same stream") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  const auto body = chat_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 12)");
  auto expected = answer(post(srv.port(), "/v1/chat/completions", body), true);
  const auto streamed_body = chat_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 12)" + stream_flag(true));
  auto res = test::run_command("curl -sS -N -i -H 'Content-Type: application/json' --data-binary " +
                               test::shell_quote(streamed_body) + " http://127.0.0.1:" + std::to_string(srv.port()) +
                               "/v1/chat/completions");
  INFO("curl: " << res.output);
  REQUIRE(res.exit_code == 0);
  const auto split = res.output.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  CHECK_THAT(res.output.substr(0, split), Catch::Contains("Content-Type: text/event-stream") &&
                                               Catch::Contains("Transfer-Encoding: chunked"));
  test::StreamReply reply;
  reply.status = 200;
  reply.headers.emplace("Content-Type", "text/event-stream");
  reply.events = test::parse_sse(res.output.substr(split + 4));
  auto got = collect(chunks_of(reply), true, true).at(0);
  CHECK(got.text == expected.text);
  CHECK(got.completion_tokens == expected.completion_tokens);
}

TEST_CASE("a client that disconnects mid-stream stops its generation") {
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.max_batch = 1;  // the next request can only run once this generation has stopped
  test::RunningServer srv(*lm, opts);
  const auto extra = std::string(R"(, "temperature": 0, "max_tokens": )") + kLongTokens;
  // The premise: this generation runs all its tokens (no end of story first).
  auto full = answer(post(srv.port(), "/v1/completions", completion_body(kLongPrompt, extra)), false);
  REQUIRE(full.finish_reason == "length");
  CHECK(srv.server().cancelled_requests() == 0);

  size_t seen = 0;
  auto reply = post_stream(srv.port(), "/v1/completions", completion_body(kLongPrompt, extra + R"(, "stream": true)"),
                           [&](const test::SseEvent&) { return ++seen < 2; });  // gone after two chunks
  CHECK(reply.status == 200);
  CHECK(seen == 2);
  // The server notices at its next writes and stops the generation between two tokens, long
  // before its 480 tokens are done.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (srv.server().cancelled_requests() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(srv.server().cancelled_requests() == 1);
  // And the model is free for the next client.
  auto next = answer(post(srv.port(), "/v1/completions", completion_body("The dog said", R"(, "temperature": 0, "max_tokens": 8)")), false);
  CHECK(next.completion_tokens == 8);
  CHECK(srv.server().cancelled_requests() == 1);
}

TEST_CASE("a cancelled request stops alone while the rest of its batch goes on") {
  auto lm = test::load_stories();
  serve::GenerationRequest r;
  r.prompt = encode(*lm, "Once upon a time");
  r.max_tokens = 40;
  r.stop_ids = lm->stop_ids();
  std::vector<serve::GenerationRequest> reqs{r, r};
  std::stop_source gone;
  int64_t tokens_when_gone = -1;
  reqs[0].cancel = gone.get_token();
  reqs[0].on_delta = [&](serve::StreamDelta d) {
    if (d.completion_tokens == 3) {  // the client leaves after the third token
      tokens_when_gone = d.completion_tokens;
      gone.request_stop();
    }
  };
  auto out = serve::run_batch(*lm, reqs);
  auto alone = serve::run_batch(*lm, std::span(reqs).subspan(1, 1)).at(0);
  CHECK(out[0].finish == serve::FinishReason::cancelled);
  CHECK(tokens_when_gone == 3);
  CHECK(out[0].tokens.size() == 3);  // stopped before the next token
  CHECK(out[1].tokens == alone.tokens);
  CHECK(out[1].text == alone.text);
  CHECK(out[1].finish == alone.finish);
  CHECK(out[1].tokens.size() == 40);
}

TEST_CASE("streamed text holds back incomplete UTF-8 and unfinished stop strings") {
  using serve::final_text_length;
  const std::vector<std::string> none;
  CHECK(final_text_length("abc", none) == 3);
  CHECK(final_text_length("ab\xC3", none) == 2);              // the first byte of 2
  CHECK(final_text_length("ab\xC3\xA9", none) == 4);          // é complete
  CHECK(final_text_length("ab\xE2\x80", none) == 2);          // 2 of 3
  CHECK(final_text_length("ab\xE2\x80\x9D", none) == 5);      // ” complete
  CHECK(final_text_length("ab\xF0\x9F\x98", none) == 2);      // 3 of 4
  CHECK(final_text_length("ab\xF0\x9F\x98\x80", none) == 6);  // 😀 complete
  CHECK(final_text_length("ab\xEF\xBF\xBD", none) == 2);      // a decoder's U+FFFD for an incomplete character
  CHECK(final_text_length("a\xEF\xBF\xBD" "b", none) == 5);   // one followed by text stays
  const std::vector<std::string> stops{"the end", "xy"};
  CHECK(final_text_length("so th", stops) == 3);
  CHECK(final_text_length("so the", stops) == 3);
  CHECK(final_text_length("so the e", stops) == 3);
  CHECK(final_text_length("so then", stops) == 7);
  CHECK(final_text_length("max", stops) == 2);
  CHECK(final_text_length("\xC3", stops) == 0);

  // Sampled stories260K text (its byte-fallback tokens can leave lone bytes, decoded as U+FFFD)
  // through the engine's stream: every delta is valid UTF-8 without a trailing U+FFFD (only
  // the last may have one) and the deltas add up to the text.
  auto lm = test::load_stories();
  for (uint64_t seed = 30; seed < 50; ++seed) {
    INFO("seed " << seed);
    serve::GenerationRequest r;
    r.prompt = encode(*lm, "日本語 日本語 日本語 café été ça größe 日本 語");
    r.max_tokens = 40;
    r.temperature = 2.0;
    r.seed = seed;
    std::vector<serve::StreamDelta> deltas;
    r.on_delta = [&](serve::StreamDelta d) { deltas.push_back(std::move(d)); };
    auto res = serve::run_batch(*lm, std::span(&r, 1)).at(0);
    std::string joined;
    for (size_t i = 0; i < deltas.size(); ++i) {
      CHECK_FALSE(first_invalid_utf8(deltas[i].text).has_value());
      if (!deltas[i].finish) CHECK_FALSE(deltas[i].text.ends_with("\xEF\xBF\xBD"));
      joined += deltas[i].text;
    }
    REQUIRE(!deltas.empty());
    CHECK(deltas.back().finish.has_value());
    CHECK(joined == res.text);
  }
}

TEST_CASE("stop sequences end a streamed text before the stop string") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  const auto greedy = R"(, "temperature": 0, "max_tokens": 40)";
  const auto full = answer(post(srv.port(), "/v1/completions", completion_body("Once upon a time", greedy)), false).text;
  REQUIRE(full.size() > 30);
  // A stop string spanning tokens in the middle of the text, and one whose beginning occurs
  // (held back, then sent once it cannot match) but which never matches whole.
  const auto stop = full.substr(15, 9);
  const auto near_miss = full.substr(5, 3) + "#";
  for (bool stream : {false, true}) {
    INFO("stream " << stream << ", stop '" << stop << "'");
    const auto body = completion_body("Once upon a time", std::string(greedy) + R"(, "stop": [")" + json_escape(near_miss) +
                                                              R"(", ")" + json_escape(stop) + R"("])");
    Streamed got;
    if (stream) {
      got = collect(chunks_of(post_stream(srv.port(), "/v1/completions", body.substr(0, body.size() - 1) + R"(, "stream": true})")),
                    false, false)
                .at(0);
    } else {
      got = answer(post(srv.port(), "/v1/completions", body), false);
    }
    CHECK(got.text == full.substr(0, full.find(stop)));
    CHECK(got.finish_reason == "stop");
  }
  // The chat endpoint, with a single stop string.
  const auto chat_full = answer(post(srv.port(), "/v1/chat/completions", chat_body("The dog said", greedy)), true).text;
  const auto chat_stop = chat_full.substr(12, 5);
  auto got = collect(chunks_of(post_stream(srv.port(), "/v1/chat/completions",
                                           chat_body("The dog said", std::string(greedy) + R"(, "stream": true, "stop": ")" +
                                                                         json_escape(chat_stop) + R"(")"))),
                     true, false)
                 .at(0);
  CHECK(got.text == chat_full.substr(0, chat_full.find(chat_stop)));
  CHECK(got.finish_reason == "stop");
}

TEST_CASE("seeded sampling with top_p streams the same text as the non-streamed answer") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  auto text = [&](const std::string& extra, bool stream) {
    const auto body = completion_body("Once upon a time", R"(, "max_tokens": 30)" + extra);
    if (!stream) return answer(post(srv.port(), "/v1/completions", body), false).text;
    return collect(chunks_of(post_stream(srv.port(), "/v1/completions", completion_body("Once upon a time", R"(, "max_tokens": 30)" + extra + R"(, "stream": true)"))),
                   false, false)
        .at(0)
        .text;
  };
  const std::string sampled = R"(, "temperature": 1.2, "top_p": 0.9, "seed": 11)";
  const auto once = text(sampled, false);
  CHECK(text(sampled, false) == once);
  CHECK(text(sampled, true) == once);
  // top_p near 0 keeps only the most likely token: greedy text whatever the temperature.
  const auto greedy = text(R"(, "temperature": 0)", false);
  CHECK(text(R"(, "temperature": 1.5, "top_p": 0, "seed": 3)", false) == greedy);
  CHECK(text(R"(, "temperature": 1.5, "top_p": 0, "seed": 4)", true) == greedy);
  // The nucleus changes what is sampled: across seeds, top_p 0.5 and top_p 1 cannot agree on
  // every 30-token sample at temperature 1.5 (their distributions differ at almost every step).
  int differ = 0;
  for (int seed = 1; seed <= 4; ++seed)
    differ += text(R"(, "temperature": 1.5, "top_p": 0.5, "seed": )" + std::to_string(seed), false) !=
              text(R"(, "temperature": 1.5, "top_p": 1, "seed": )" + std::to_string(seed), false);
  CHECK(differ > 0);
}

TEST_CASE("n above 1 at temperature 0 answers identical choices") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  const auto one = answer(post(srv.port(), "/v1/chat/completions", chat_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 10)")), true);
  auto r = post(srv.port(), "/v1/chat/completions", chat_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 10, "n": 3)"));
  REQUIRE(r.status == 200);
  auto j = parse_json(r.body);
  auto choices = j->root["choices"].get_array().value();
  REQUIRE(choices.size() == 3);
  for (int64_t i = 0; i < 3; ++i) {
    CHECK(int64_t(choices.at(static_cast<size_t>(i))["index"]) == i);
    CHECK(str(choices.at(static_cast<size_t>(i))["message"]["content"]) == one.text);
  }
  CHECK(int64_t(j->root["usage"]["completion_tokens"]) == 3 * *one.completion_tokens);  // every choice counts

  auto streamed = collect(chunks_of(post_stream(srv.port(), "/v1/completions",
                                                completion_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 10, "n": 2)" + stream_flag(true)))),
                          false, true, 2);
  const auto single = answer(post(srv.port(), "/v1/completions", completion_body("Once upon a time", R"(, "temperature": 0, "max_tokens": 10)")), false);
  for (const auto& c : streamed) {
    CHECK(c.text == single.text);
    CHECK(c.finish_reason == single.finish_reason);
    CHECK(c.completion_tokens == 2 * *single.completion_tokens);
  }
}

TEST_CASE("streaming and sampling fields are validated with 400s naming the field") {
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  auto param = [&](const std::string& path, const std::string& body) {
    auto r = post(srv.port(), path, body);
    INFO("body: " << body << "\nreply: " << r.body);
    REQUIRE(r.status == 400);
    auto j = parse_json(r.body);
    require_shape(j->root, test::kErrorShape);
    return std::string(str(j->root["error"]["param"]));
  };
  const std::string chat = "/v1/chat/completions", cmpl = "/v1/completions";
  CHECK(param(cmpl, completion_body("x", R"(, "stream": "yes")")) == "stream");
  CHECK(param(chat, chat_body("x", R"(, "stream_options": {"include_usage": true})")) == "stream_options");
  CHECK(param(chat, chat_body("x", R"(, "stream": false, "stream_options": {"include_usage": true})")) == "stream_options");
  CHECK(param(chat, chat_body("x", R"(, "stream": true, "stream_options": {"include_usage": 1})")) ==
        "stream_options.include_usage");
  CHECK(param(cmpl, completion_body("x", R"(, "stream": true, "stream_options": {"include_obfuscation": true})")) ==
        "stream_options.include_obfuscation");
  CHECK(param(cmpl, completion_body("x", R"(, "stream": true, "stream_options": [1])")) == "stream_options");
  CHECK(param(cmpl, completion_body("x", R"(, "top_p": 1.5)")) == "top_p");
  CHECK(param(chat, chat_body("x", R"(, "top_p": "high")")) == "top_p");
  CHECK(param(cmpl, completion_body("x", R"(, "stop": ["a", "b", "c", "d", "e"])")) == "stop");
  CHECK(param(chat, chat_body("x", R"(, "n": 2)")) == "n");  // the default temperature is 1
  CHECK(param(chat, chat_body("x", R"(, "n": 2, "temperature": 0.5, "stream": true)")) == "n");
  CHECK(param(cmpl, completion_body("x", R"(, "n": 0)")) == "n");
  // A streamed request that is refused is refused before any event, as JSON.
  auto r = post_stream(srv.port(), cmpl, completion_body("x", R"(, "stream": true, "top_p": -1)"));
  CHECK(r.status == 400);
  CHECK(r.events.empty());
  CHECK_THAT(r.body, Catch::Contains("top_p"));
  // Four stop strings are fine.
  CHECK(post(srv.port(), cmpl, completion_body("x", R"(, "max_tokens": 2, "stop": ["a", "b", "c", "d"])")).status == 200);
}

TEST_CASE("a stream in flight when the server stops runs to its end") {
  // httplib ends a chunked response between two writes once its server stops; the server must
  // let streams in flight finish like any other request in flight.
  auto lm = test::load_stories();
  test::RunningServer srv(*lm);
  const auto extra = std::string(R"(, "temperature": 0, "max_tokens": 200)");
  const auto expected = answer(post(srv.port(), "/v1/completions", completion_body(kLongPrompt, extra)), false);
  std::promise<void> started;
  std::atomic<bool> first = true;
  auto reply = std::async(std::launch::async, [&] {
    return post_stream(srv.port(), "/v1/completions",
                       completion_body(kLongPrompt, extra + R"(, "stream": true)"),
                       [&](const test::SseEvent&) {
                         if (first.exchange(false)) started.set_value();
                         return true;
                       });
  });
  // (A refused request never starts: the wait below fails rather than hangs.)
  REQUIRE(started.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  srv.server().stop();
  auto got = collect(chunks_of(reply.get()), false, false).at(0);
  CHECK(got.finish_reason == "length");
  CHECK(got.text == expected.text);
}

TEST_CASE("the test SSE parser follows the WHATWG event stream rules") {
  // Fed in every possible split of the bytes, it finds the same events.
  const std::string stream =
      "\xEF\xBB\xBF: a comment\r\n"
      "data: one\r\n\r\n"
      "data:two\n"
      "data:  three\n"
      "event: custom\n"
      "id: 7\n"
      "retry: 10\n"
      "unknown: x\n\n"
      "data\r\rdata: after CR\r\r"
      ": no event without data\n\n"
      "data: cut off without a blank line";
  auto check = [](const std::vector<test::SseEvent>& ev) {
    REQUIRE(ev.size() == 4);
    CHECK(ev[0].data == "one");
    CHECK(ev[0].type == "message");
    CHECK(ev[1].data == "two\n three");  // one leading space removed, lines joined by '\n'
    CHECK(ev[1].type == "custom");
    CHECK(ev[1].id == "7");
    CHECK(ev[2].data == "");  // "data" without a colon: an empty value
    CHECK(ev[2].type == "message");
    CHECK(ev[2].id == "7");  // the last event id carries over
    CHECK(ev[3].data == "after CR");
  };
  check(test::parse_sse(stream));
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    INFO("split at " << cut);
    test::SseParser p;
    auto ev = p.feed(std::string_view(stream).substr(0, cut));
    auto rest = p.feed(std::string_view(stream).substr(cut));
    ev.insert(ev.end(), rest.begin(), rest.end());
    check(ev);
    CHECK(p.comments().size() == 2);
  }
}
