#include "engine/chat.h"

#include <algorithm>

#include "util/json_writer.h"

namespace pizza {

ChatPrompt render_chat_prompt(const LanguageModel& lm, const std::string& prompt, const ChatOptions& opts) {
  ChatPrompt c;
  c.chat_template = opts.chat_template.value_or(serve::default_chat_template(lm.path(), lm.config().model_type, &lm.tokenizer()));
  c.system = opts.system;
  std::vector<serve::ChatMessage> messages;
  if (opts.system) messages.push_back({"system", *opts.system});
  messages.push_back({"user", prompt});
  auto rendered = serve::render_chat(c.chat_template, messages);
  const auto [begin, end] = rendered.content_spans.back();
  c.rendered = std::move(rendered.text);
  c.prompt = c.rendered.substr(begin, end - begin);
  c.prompt_begin = begin;
  c.parse_special = rendered.parse_special;
  if (rendered.end_of_turn)
    if (auto id = serve::special_token_id(lm.tokenizer(), *rendered.end_of_turn)) c.stop_ids.push_back(*id);
  return c;
}

Encoding encode_chat_prompt(const Tokenizer& tok, const ChatPrompt& chat) {
  EncodeOptions eo;
  eo.parse_special = chat.parse_special;
  Encoding enc = tok.encode(chat.rendered, eo);
  const size_t b = chat.prompt_begin, e = chat.prompt_begin + chat.prompt.size();
  for (auto& t : enc.tokens) {
    const bool in_prompt = t.end > b && t.begin < e;
    if (in_prompt) {
      t.begin = std::max(t.begin, b) - b;
      t.end = std::min(t.end, e) - b;
      continue;
    }
    if (!t.special && t.end > t.begin) t.text = chat.rendered.substr(t.begin, t.end - t.begin);
    t.begin = t.end = t.end <= b ? 0 : chat.prompt.size();
    t.special = true;
  }
  return enc;
}

std::vector<std::pair<std::string, std::string>> chat_parameters(const ChatPrompt* chat) {
  if (!chat) return {};  // results without --chat keep their parameters as before
  return {{"chat", "true"},
          {"chat_template", json_string(serve::chat_template_name(chat->chat_template))},
          {"system", chat->system ? json_string(*chat->system) : "null"}};
}

}  // namespace pizza
