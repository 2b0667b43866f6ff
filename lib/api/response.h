// The response side: every dialect of OpenAI-compatible completion responses normalised into
// one Completion. Dialects handled (see parse_completion):
//  - OpenAI chat: choices[0].logprobs.content[] of {token, logprob, bytes, top_logprobs[]}.
//  - OpenAI legacy completions: choices[0].logprobs.{tokens, token_logprobs, top_logprobs
//    ([{token: logprob}]), text_offset}; with echo the prompt's tokens come first.
//  - vLLM: the legacy shape plus prompt_logprobs ([null, {token_id: {logprob, rank,
//    decoded_token}}, ...]) giving the alternatives at each prompt position.
//  - llama.cpp server: the chat-style content[] list on /v1/completions too (with `id`), echo
//    ignored, zero probability as about -3.4e38, lone UTF-8 continuation bytes as U+FFFD with
//    the real byte in `bytes`.
#pragma once

#include "api/request.h"
#include "util/error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pizza::api {

// A failure talking to the server (bad answer, HTTP error, no logprobs...). One line, never
// containing the API key. An InputError so the CLI reports it and exits 1.
class ApiError : public InputError {
 public:
  using InputError::InputError;
};

// A 429 with error code `insufficient_quota`: retrying cannot help, the whole run stops.
class QuotaExceeded : public ApiError {
 public:
  using ApiError::ApiError;
};

// A 2xx response that is JSON but unusable as an answer: an error object, no choices, a
// log-probability that is not a number <= 0, no alternatives where top_logprobs were asked for.
// The transport retries it like a truncated body; after the retries the run fails with it.
class MalformedResponse : public ApiError {
 public:
  using ApiError::ApiError;
};

struct TopLogprob {
  std::string token;
  double logprob = 0;
};

// Logprob conventions: -inf = zero probability (llama.cpp's -3.4e38, anything <= -1e30);
// NaN = not reported (the first prompt token of an echo has no logprob).
struct TokenLogprob {
  std::string token;  // the token's exact bytes (from `bytes` when the server sent them)
  double logprob = 0;
  std::vector<uint8_t> bytes;   // as sent by the server; empty when it sent none
  std::vector<TopLogprob> top;  // alternatives, most likely first
};

struct Usage {
  int64_t prompt = 0;
  int64_t completion = 0;
};

struct Completion {
  std::string text;                         // the generated text only (never the echoed prompt)
  std::vector<TokenLogprob> tokens;         // generated tokens
  std::vector<TokenLogprob> prompt_tokens;  // the prompt's tokens when echoed (else empty)
  std::string finish_reason, system_fingerprint, model;
  Usage usage;
};

// An OpenAI error object {"error": {"message", "type", "code"}} (code may be a string or a
// number; stored as text).
struct ErrorObject {
  std::string message, type, code;
};
std::optional<ErrorObject> parse_error_object(std::string_view body);

// Parses a 2xx response body to `request`. Throws MalformedResponse on a non-JSON body, an
// error object, no choices, a log-probability that is not a number <= 0 (null is allowed only
// for echoed prompt tokens; tiny positive float error up to 1e-4 reads as 0), or a generated
// token without alternatives when top_logprobs were asked for (without echo); ApiError on missing logprobs
// when they were asked for (a server that does not support them).
Completion parse_completion(std::string_view body, const CompletionRequest& request);

// Replaces every occurrence of `secret` in `text` by "[redacted]" (nothing when secret is
// empty). Used on anything from the server that ends up in a message.
std::string redact(std::string text, std::string_view secret);

// `text` redacted of `secret`, then cut to `max_bytes` (at a UTF-8 character boundary, "..."
// appended when cut) with line breaks as spaces: redaction comes first, so a secret that
// straddles the cut cannot survive in part.
std::string snippet(std::string_view text, std::string_view secret, size_t max_bytes = 200);

// "HTTP <status>: <first 200 bytes of body>" with the error object's fields when present
// (each at most 200 bytes), redacted of `secret` before anything is cut.
std::string describe_http_failure(long status, std::string_view body, std::string_view secret);

}  // namespace pizza::api
