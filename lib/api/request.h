// The request side of `pizza api`: one completion request against an OpenAI-compatible server
// and its canonical JSON body. The body is canonical (object keys sorted at every level,
// compact, shortest round-trip numbers) because the response cache is keyed on it: the same
// request must always serialise to the same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::api {

enum class Endpoint {
  Chat,         // POST {base}/chat/completions, the prompt as the user message (after `system`)
  Completions,  // POST {base}/completions, the prompt as a plain string
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  std::string prompt;
  // Chat only: a system message sent before the user's (InputError on completions).
  std::optional<std::string> system;
  int64_t max_tokens = 16;
  // Chat sends max_tokens as `max_completion_tokens` (OpenAI's current name); older servers
  // want `max_tokens` (--legacy-max-tokens). Completions always send `max_tokens`.
  bool legacy_max_tokens = false;
  double temperature = 0.0;
  std::optional<int64_t> seed;
  bool logprobs = true;   // chat: `logprobs: true`; completions: `logprobs: <top_logprobs>`
  int top_logprobs = 20;  // alternatives per position
  bool echo = false;      // completions only: return the prompt's tokens (and logprobs) too
  // A JSON object merged into the body (its keys win), e.g. {"cache_prompt": false}. Empty:
  // nothing merged. Must be an object (InputError otherwise).
  std::string extra_body;
};

// "/chat/completions" or "/completions" (appended to the base URL, which ends in /v1).
std::string_view endpoint_path(Endpoint endpoint);

// The canonical JSON body of `request`. Throws InputError when extra_body is not a JSON
// object, when echo is asked of the chat endpoint, or a system message of completions.
std::string serialize_body(const CompletionRequest& request);

// Re-serialises any JSON text canonically (sorted keys, compact, shortest numbers; integers
// stay integers). Throws InputError naming `what` when `json` does not parse.
std::string canonical_json(std::string_view json, std::string_view what);

}  // namespace pizza::api
