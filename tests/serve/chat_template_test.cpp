// render_chat's content spans: where each message's content lands in the rendered text, for
// every template (what `pizza local --chat` uses to tell the user's text from the template's).
// The expected renderings are written out by hand from each family's published format.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "openai/chat_template.h"

using namespace pizza::serve;

namespace {

std::string span_text(const RenderedChat& r, size_t i) {
  const auto [b, e] = r.content_spans.at(i);
  REQUIRE(b <= e);
  REQUIRE(e <= r.text.size());
  return r.text.substr(b, e - b);
}

}  // namespace

TEST_CASE("chat template: chatml renders system and user turns and spans each message's content", "[chat]") {
  const auto r = render_chat(ChatTemplate::chatml, {{"system", "Be brief."}, {"user", " Once upon a time"}});
  CHECK(r.text ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Once upon a time<|im_end|>\n<|im_start|>assistant\n");
  REQUIRE(r.content_spans.size() == 2);
  CHECK(r.content_spans[0] == std::pair<size_t, size_t>{19, 28});
  CHECK(span_text(r, 1) == " Once upon a time");  // chatml keeps the message as it is
  CHECK(r.end_of_turn == "<|im_end|>");
  CHECK(r.parse_special);
}

TEST_CASE("chat template: every template's spans cover the (trimmed) content, folded system text included", "[chat]") {
  const std::vector<ChatMessage> messages{{"system", " Be brief. "}, {"user", " Hello there "}, {"assistant", "Hi!"},
                                          {"user", "And again"}};
  for (auto t : {ChatTemplate::llama2, ChatTemplate::llama3, ChatTemplate::chatml, ChatTemplate::gemma,
                 ChatTemplate::mistral, ChatTemplate::plain}) {
    INFO(chat_template_name(t));
    const auto r = render_chat(t, messages);
    REQUIRE(r.content_spans.size() == messages.size());
    const bool trims = t != ChatTemplate::chatml && t != ChatTemplate::plain;
    CHECK(span_text(r, 0) == (trims ? "Be brief." : " Be brief. "));
    CHECK(span_text(r, 1) == (trims ? "Hello there" : " Hello there "));
    CHECK(span_text(r, 2) == "Hi!");
    CHECK(span_text(r, 3) == "And again");
    // Spans are in message order and do not overlap.
    for (size_t i = 1; i < r.content_spans.size(); ++i) CHECK(r.content_spans[i - 1].second <= r.content_spans[i].first);
  }
  // The folded layouts, by hand.
  CHECK(render_chat(ChatTemplate::llama2, {{"system", "S"}, {"user", "U"}}).text == "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]");
  CHECK(render_chat(ChatTemplate::mistral, {{"system", "S"}, {"user", "U"}}).text == "[INST] S\n\nU [/INST]");
  CHECK(render_chat(ChatTemplate::gemma, {{"system", "S"}, {"user", "U"}}).text ==
        "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n");
  CHECK(render_chat(ChatTemplate::plain, {{"system", "S"}, {"user", "U"}}).text == "S\nU");
}
