// Built-in chat templates for `pizza serve`: renders OpenAI-style messages into the prompt text
// the model family was trained on (no Jinja: the handful of formats below cover the supported
// families, and rendering them in C++ keeps the server dependency-free).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pizza::serve {

enum class ChatTemplate { llama2, llama3, chatml, gemma, mistral, plain };

struct ChatMessage {
  std::string role;  // system | user | assistant (developer is treated as system)
  std::string content;
};

// "llama2" ... "plain"; UsageError naming the accepted names otherwise.
ChatTemplate parse_chat_template(std::string_view name);
std::string_view chat_template_name(ChatTemplate t);

// The template for a loaded model: a chat_template in tokenizer_config.json is recognised by its
// markers (<|im_start|> -> chatml, <|start_header_id|> -> llama3, <start_of_turn> -> gemma,
// [INST] with <<SYS>> -> llama2, else [INST] -> mistral). Without one, the family decides:
// qwen2* -> chatml, gemma* -> gemma, mistral/mixtral -> mistral, llama with a Llama-3 tokenizer
// -> llama3; any other model (a base model such as stories260K) -> plain.
// model_path: the checkpoint (a directory, or a file without tokenizer_config.json);
// model_type: config.json's; tokenizer: the model's, when it has one.
ChatTemplate default_chat_template(const std::filesystem::path& model_path, std::string_view model_type,
                                   const Tokenizer* tokenizer);

struct RenderedChat {
  std::string text;            // the prompt, ending with the assistant turn's opening
  bool parse_special = false;  // whether the text spells special tokens (<|im_start|>, </s>...)
  // The template's end-of-turn marker (e.g. "<|im_end|>"), which also ends generation.
  std::optional<std::string> end_of_turn;
  // Where each message's content landed in `text` (one [begin, end) byte span per message, in
  // the order given): the content as rendered, so trimmed where the template trims it. A system
  // message that a template folds into the first user turn gets the span of the folded system
  // text (all of them, when there are several). `pizza local --chat` attributes the user's span.
  std::vector<std::pair<size_t, size_t>> content_spans;
};

// Renders messages plus the generation prompt. The tokenizer's BOS is not part of the text:
// encoding with add_special_tokens adds it where the tokenizer is configured to.
RenderedChat render_chat(ChatTemplate t, const std::vector<ChatMessage>& messages);

// The token id of a template marker such as "<|im_end|>" when the tokenizer has it as one
// special token (what ends generation at the end of the assistant's turn).
std::optional<int64_t> special_token_id(const Tokenizer& tok, const std::string& marker);

}  // namespace pizza::serve
