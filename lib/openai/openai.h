// OpenAI-compatible request parsing and response bodies for `pizza serve`: strict validation
// (unknown fields, wrong types and out-of-range values are 400s naming the parameter) and
// responses in the shapes of OpenAI's chat.completion / text_completion / model list objects,
// with logprobs as OpenAI (chat) and vLLM (completions, including echo) report them.
// Torch-free: what validation needs of the model is in ServedModel (serve/server.h builds one
// from a LanguageModel), so the request parser can be fuzzed without the engine.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "openai/chat_template.h"
#include "openai/generation.h"
#include "tokenizer/tokenizer.h"
#include "util/json_writer.h"

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

// The model as the server presents it, and what requests are validated against.
struct ServedModel {
  const Tokenizer& tokenizer;  // must outlive this
  int64_t context_length = 0;  // max_position_embeddings: prompt plus completion tokens
  int64_t vocab_size = 0;      // token ids of a prompt must lie in [0, vocab_size)
  std::vector<int64_t> stop_ids;  // tokens that end every generation (the model's EOS ids)
  std::string root;         // the checkpoint's path, /v1/models' "root"
  std::string name;         // what clients pass as "model"
  ChatTemplate chat_template = ChatTemplate::plain;
  std::string fingerprint;  // system_fingerprint
  int64_t created = 0;      // unix time the server loaded it
  // The most bytes a prompt can have and still fit the context (context x the longest token's
  // bytes): longer texts are refused before they are tokenized (max_prompt_bytes()).
  size_t max_prompt_bytes = 0;
};

// Context length x the longest token's bytes: no text longer than this encodes to a prompt that
// fits (every token covers at most that many bytes of valid UTF-8 text).
size_t max_prompt_bytes(const Tokenizer& tok, int64_t context_length);

enum class Endpoint { chat, completions };

struct ApiRequest {
  Endpoint endpoint = Endpoint::completions;
  GenerationRequest generation;
  bool logprobs = false;     // report log-probs (chat: logprobs=true; completions: logprobs set)
  bool echo = false;         // completions: prepend the prompt (and its log-probs)
  std::string prompt_text;   // the prompt as text, for echo
  int64_t n = 1;             // choices; > 1 only at temperature 0, where they are identical
  bool stream = false;       // answer with server-sent events (StreamEncoder)
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
};

// Parse and validate a request body; throws ApiError (400 for bad input, 404 for a model
// name other than the served one).
ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ServedModel& model);

// The response body for a finished request; id is "chatcmpl-..." / "cmpl-...".
std::string response_body(const ApiRequest& request, const GenerationResult& result, const ServedModel& model,
                          std::string_view id, int64_t created);

// The events of a streamed response (`stream: true`), in the shapes of OpenAI's
// chat.completion.chunk and streamed text_completion objects: each call returns the bytes to
// send, whole `data: {...}\n\n` events. Chat starts with a chunk whose delta has the role;
// text and log-probs follow as the engine delivers them; the last delta gives a chunk with the
// finish_reason, then (stream_options.include_usage) a chunk with usage and no choices, then
// `data: [DONE]`. With n > 1 every chunk is sent once per choice index.
class StreamEncoder {
 public:
  StreamEncoder(const ApiRequest& request, const ServedModel& model, std::string id, int64_t created);
  // What can be sent before the engine has produced anything.
  std::string start();
  // The events for one delta of the engine's stream (StreamDelta::error is for error()).
  std::string delta(const StreamDelta& d);
  // An error event, {"error": {...}} as OpenAI sends one mid-stream; the stream ends after it
  // without [DONE], so a client cannot take it for a complete answer.
  static std::string error(const ApiError& e);
  // An SSE comment: ignored by clients, it keeps idle connections alive and reveals dead ones.
  static std::string heartbeat() { return ": keep-alive\n\n"; }

 private:
  // One chunk per choice index; `choice` writes the choice's members after "index".
  std::string event(const std::function<void(JsonWriter&)>& choice) const;

  const ApiRequest& request_;
  const ServedModel& model_;
  std::string id_;
  int64_t created_;
  int64_t text_offset_ = 0;  // completions log-probs: characters before the next token
};

// GET /v1/models, and GET /v1/models/{name}.
std::string models_body(const ServedModel& model);
std::string model_body(const ServedModel& model);

}  // namespace pizza::serve
