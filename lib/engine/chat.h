// `pizza local --chat`: the prompt as the user's message of the model's chat template (the
// engine `pizza serve` renders conversations with). The rendered conversation is what the model
// runs on; units, spans and perturbations cover only the user's message, and every token of the
// template (markup, role names, the system message) is a special, non-unit column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "openai/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace pizza {

struct ChatOptions {
  std::optional<serve::ChatTemplate> chat_template;  // default: the model's (default_chat_template)
  std::optional<std::string> system;                 // a system message before the user's
};

struct ChatPrompt {
  std::string rendered;  // system message (if any), the user's turn, the assistant turn's opening
  // The user's message as the template placed it in `rendered` (templates that trim messages
  // trim it): the text every unit and byte span refers to.
  std::string prompt;
  size_t prompt_begin = 0;  // where `prompt` starts in `rendered`
  bool parse_special = false;
  std::vector<int64_t> stop_ids;  // the template's end-of-turn token, when the tokenizer has it
  serve::ChatTemplate chat_template = serve::ChatTemplate::plain;
  std::optional<std::string> system;

  std::string prefix() const { return rendered.substr(0, prompt_begin); }
  std::string suffix() const { return rendered.substr(prompt_begin + prompt.size()); }
};

// Renders [system?, user: prompt] with the model's (or the given) template.
ChatPrompt render_chat_prompt(const LanguageModel& lm, const std::string& prompt, const ChatOptions& opts);

// Tokenizes the rendered conversation as `pizza serve` does (BOS where the tokenizer adds it,
// special-token strings parsed when the template spells them) and expresses the tokens relative
// to the user's prompt: a token overlapping the prompt keeps its byte span, shifted to the
// prompt and clipped to it (sentencepiece's "▁" before the first word of "[INST] Once" is the
// template's space but the word's token); every other token becomes special with an empty span
// at the prompt's start (tokens before it) or end (tokens after it), its text the bytes it
// covers (or its piece, for a special token).
Encoding encode_chat_prompt(const Tokenizer& tok, const ChatPrompt& chat);

// The parameters a --chat result records: chat, chat_template, system (none without --chat).
std::vector<std::pair<std::string, std::string>> chat_parameters(const ChatPrompt* chat);

}  // namespace pizza
