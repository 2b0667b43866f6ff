#include "openai/chat_template.h"

#include <simdjson.h>

#include <filesystem>

#include "util/error.h"

namespace pizza::serve {

namespace {

constexpr std::pair<std::string_view, ChatTemplate> kNames[] = {
    {"llama2", ChatTemplate::llama2}, {"llama3", ChatTemplate::llama3}, {"chatml", ChatTemplate::chatml},
    {"gemma", ChatTemplate::gemma},   {"mistral", ChatTemplate::mistral}, {"plain", ChatTemplate::plain},
};

// The chat_template string(s) of tokenizer_config.json, concatenated; empty when absent.
std::string configured_template_text(const std::filesystem::path& model_dir) {
  auto file = model_dir / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return {};
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.load(file.string()).get(root)) return {};  // the tokenizer loader reports bad files
  simdjson::dom::element tmpl;
  if (root["chat_template"].get(tmpl)) return {};
  if (tmpl.is_string()) return std::string(std::string_view(tmpl));
  std::string all;  // a list of named templates: [{"name": ..., "template": ...}]
  if (tmpl.is_array())
    for (auto entry : tmpl.get_array()) {
      std::string_view t;
      if (!entry["template"].get(t)) all += t;
    }
  return all;
}

bool contains(std::string_view haystack, std::string_view needle) { return haystack.find(needle) != std::string_view::npos; }

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes)
    if (s.starts_with(p)) return true;
  return false;
}

// Whether the tokenizer knows `marker` as one special token (Llama 3's header markers).
bool has_special_token(const Tokenizer& tok, std::string_view marker) {
  EncodeOptions eo;
  eo.add_special_tokens = false;
  eo.parse_special = true;
  auto enc = tok.encode(marker, eo);
  return enc.tokens.size() == 1 && enc.tokens[0].special;
}

std::string trim(std::string_view s) {
  const auto ws = " \t\n\r";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// Families without a system role (Llama 2, Mistral, Gemma) fold the system text into the first
// user turn; returns (system text, the remaining messages).
std::pair<std::string, std::vector<ChatMessage>> split_system(const std::vector<ChatMessage>& messages) {
  std::string system;
  std::vector<ChatMessage> rest;
  for (const auto& m : messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
    } else {
      rest.push_back(m);
    }
  }
  return {system, rest};
}

// Sets the content span of every system message (folded into the first user turn) to `span`.
void set_system_spans(const std::vector<ChatMessage>& messages, std::pair<size_t, size_t> span, RenderedChat& out) {
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role == "system") out.content_spans[i] = span;
}

RenderedChat render_inst(const std::vector<ChatMessage>& messages, bool llama2) {
  auto [system, rest] = split_system(messages);
  RenderedChat out;
  out.parse_special = true;
  out.content_spans.assign(messages.size(), {0, 0});
  bool first_user = true;
  size_t k = 0;  // index into `messages` of the next non-system message
  auto next_index = [&] {
    while (messages[k].role == "system") ++k;
    return k++;
  };
  for (const auto& m : rest) {
    const size_t index = next_index();
    if (m.role == "user") {
      std::string content = trim(m.content);
      // Every user turn after the first opens a new sequence with BOS (the first BOS comes from
      // the tokenizer).
      if (!first_user && llama2) out.text += "<s>";
      out.text += "[INST] ";
      if (first_user && !system.empty()) {
        if (llama2) out.text += "<<SYS>>\n";
        set_system_spans(messages, {out.text.size(), out.text.size() + trim(system).size()}, out);
        out.text += trim(system) + (llama2 ? "\n<</SYS>>\n\n" : "\n\n");
      }
      out.content_spans[index] = {out.text.size(), out.text.size() + content.size()};
      out.text += content + " [/INST]";
      first_user = false;
    } else {
      // Llama 2 pads the answer with spaces; Mistral does not.
      const std::string_view pad = llama2 ? " " : "";
      out.text.append(pad);
      const std::string content = trim(m.content);
      out.content_spans[index] = {out.text.size(), out.text.size() + content.size()};
      out.text.append(content).append(pad).append("</s>");
    }
  }
  return out;
}

}  // namespace

ChatTemplate parse_chat_template(std::string_view name) {
  for (const auto& [n, t] : kNames)
    if (n == name) return t;
  throw UsageError("unknown --chat-template '" + std::string(name) + "' (expected llama2, llama3, chatml, gemma, mistral or plain)");
}

std::string_view chat_template_name(ChatTemplate t) {
  for (const auto& [n, tt] : kNames)
    if (tt == t) return n;
  return "plain";
}

ChatTemplate default_chat_template(const std::filesystem::path& model_path, std::string_view type,
                                   const Tokenizer* tokenizer) {
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) {
    auto text = configured_template_text(model_path);
    if (contains(text, "<|im_start|>")) return ChatTemplate::chatml;
    if (contains(text, "<|start_header_id|>")) return ChatTemplate::llama3;
    if (contains(text, "<start_of_turn>")) return ChatTemplate::gemma;
    if (contains(text, "[INST]")) return contains(text, "<<SYS>>") ? ChatTemplate::llama2 : ChatTemplate::mistral;
  }
  if (starts_with_any(type, {"qwen2"})) return ChatTemplate::chatml;
  if (starts_with_any(type, {"gemma"})) return ChatTemplate::gemma;
  if (starts_with_any(type, {"mistral", "mixtral"})) return ChatTemplate::mistral;
  if (type == "llama" && tokenizer && has_special_token(*tokenizer, "<|start_header_id|>"))
    return ChatTemplate::llama3;
  return ChatTemplate::plain;
}

RenderedChat render_chat(ChatTemplate t, const std::vector<ChatMessage>& messages) {
  RenderedChat out;
  // One turn: its opening, the content (recording where it lands), its closing.
  const auto turn = [&out](const std::string& open, const std::string& content, const char* close) {
    out.text += open;
    out.content_spans.emplace_back(out.text.size(), out.text.size() + content.size());
    out.text += content + close;
  };
  switch (t) {
    case ChatTemplate::llama2:
    case ChatTemplate::mistral:
      return render_inst(messages, t == ChatTemplate::llama2);
    case ChatTemplate::llama3:
      for (const auto& m : messages) turn("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", trim(m.content), "<|eot_id|>");
      out.text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      out.parse_special = true;
      out.end_of_turn = "<|eot_id|>";
      return out;
    case ChatTemplate::chatml:
      for (const auto& m : messages) turn("<|im_start|>" + m.role + "\n", m.content, "<|im_end|>\n");
      out.text += "<|im_start|>assistant\n";
      out.parse_special = true;
      out.end_of_turn = "<|im_end|>";
      return out;
    case ChatTemplate::gemma: {
      auto [system, rest] = split_system(messages);
      out.content_spans.assign(messages.size(), {0, 0});
      bool first = true;
      size_t k = 0;  // index into `messages` of the next non-system message
      for (const auto& m : rest) {
        while (messages[k].role == "system") ++k;
        const size_t index = k++;
        std::string content = trim(m.content);
        out.text += "<start_of_turn>" + std::string(m.role == "assistant" ? "model" : m.role) + "\n";
        if (first && !system.empty()) {
          set_system_spans(messages, {out.text.size(), out.text.size() + trim(system).size()}, out);
          out.text += trim(system) + "\n\n";
        }
        first = false;
        out.content_spans[index] = {out.text.size(), out.text.size() + content.size()};
        out.text += content + "<end_of_turn>\n";
      }
      out.text += "<start_of_turn>model\n";
      out.parse_special = true;
      out.end_of_turn = "<end_of_turn>";
      return out;
    }
    case ChatTemplate::plain:
      // A base model has no turn structure: the conversation is its contents, one per line,
      // and the model simply continues it.
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i) out.text += "\n";
        out.content_spans.emplace_back(out.text.size(), out.text.size() + messages[i].content.size());
        out.text += messages[i].content;
      }
      return out;
  }
  return out;
}

std::optional<int64_t> special_token_id(const Tokenizer& tok, const std::string& marker) {
  EncodeOptions eo;
  eo.add_special_tokens = false;
  eo.parse_special = true;
  auto enc = tok.encode(marker, eo);
  if (enc.tokens.size() == 1 && enc.tokens[0].special) return enc.tokens[0].id;
  return std::nullopt;
}

}  // namespace pizza::serve
