// OpenAI-compatible request parsing and response bodies for `pizza serve`: strict validation
// (unknown fields, wrong types and out-of-range values are 400s naming the parameter) and
// responses in the shapes of OpenAI's chat.completion / text_completion / model list objects,
// with logprobs as OpenAI (chat) and vLLM (completions, including echo) report them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "model/model.h"
#include "serve/batch.h"
#include "serve/chat_template.h"

namespace pizza::serve {

// An error answered to the client: HTTP status plus OpenAI's error object fields.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {},
           std::string type = "invalid_request_error")
      : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)), type(std::move(type)) {}
  int status;
  std::string param, code, type;  // empty param/code are written as null
};

// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);

// The model as the server presents it.
struct ServedModel {
  const LanguageModel& lm;
  std::string name;         // what clients pass as "model"
  ChatTemplate chat_template;
  std::string fingerprint;  // system_fingerprint
  int64_t created = 0;      // unix time the server loaded it
  // The most bytes a prompt can have and still fit the context (context x the longest token's
  // bytes): longer texts are refused before they are tokenized (max_prompt_bytes()).
  size_t max_prompt_bytes = 0;
};

// Context length x the longest token's bytes: no text longer than this encodes to a prompt that
// fits (every token covers at most that many bytes of valid UTF-8 text).
size_t max_prompt_bytes(const LanguageModel& lm);

enum class Endpoint { chat, completions };

struct ApiRequest {
  Endpoint endpoint = Endpoint::completions;
  GenerationRequest generation;
  bool logprobs = false;     // report log-probs (chat: logprobs=true; completions: logprobs set)
  bool echo = false;         // completions: prepend the prompt (and its log-probs)
  std::string prompt_text;   // the prompt as text, for echo
};

// Parse and validate a request body; throws ApiError (400 for bad input, 404 for a model
// name other than the served one).
ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ServedModel& model);

// The response body for a finished request; id is "chatcmpl-..." / "cmpl-...".
std::string response_body(const ApiRequest& request, const GenerationResult& result, const ServedModel& model,
                          std::string_view id, int64_t created);

// GET /v1/models, and GET /v1/models/{name}.
std::string models_body(const ServedModel& model);
std::string model_body(const ServedModel& model);

}  // namespace pizza::serve
