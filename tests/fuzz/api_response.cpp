// libFuzzer target: a response body from an OpenAI-compatible server, read as each kind of
// request pizza api sends (chat or completions, with or without echo, with and without
// top_logprobs: the first input byte picks), plus the error-object and failure-message paths
// that quote the body (which must never leave a piece of the API key in them).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/response.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return -1;
  const uint8_t mode = data[0];
  const auto body = pizza::fuzz::as_text(data + 1, size - 1);
  pizza::api::CompletionRequest request;
  request.endpoint = (mode & 1) ? pizza::api::Endpoint::Completions : pizza::api::Endpoint::Chat;
  request.echo = request.endpoint == pizza::api::Endpoint::Completions && (mode & 2);
  request.logprobs = !(mode & 4);
  request.top_logprobs = (mode & 8) ? 0 : 5;
  try {
    (void)pizza::api::parse_completion(body, request);
  } catch (const pizza::InputError&) {
  }
  (void)pizza::api::parse_error_object(body);
  // The key, when the body holds it, must not survive into the message (seeds carry it).
  constexpr std::string_view kKey = "sk-fuzz0123456789";
  if (pizza::api::describe_http_failure(400 + mode, body, kKey).find(kKey) != std::string::npos) std::abort();
  (void)pizza::api::snippet(body, kKey, mode);
  return 0;
}
