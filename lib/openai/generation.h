// What a request asks the generation engine for and what it gets back: the plain types shared
// by the torch-free OpenAI layer (openai.h parses requests into them and encodes results) and
// `pizza serve`'s engine (serve/batch.h runs them).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pizza::serve {

struct TokenLogprob {
  int64_t id = 0;
  double logprob = 0.0;
  std::vector<std::pair<int64_t, double>> top;  // best first
};

// cancelled: the request's own stop token was requested (its client went away).
enum class FinishReason { stop, length, cancelled };

// A streamed request's progress, reported as soon as a token is chosen. The texts of all deltas
// concatenate to GenerationResult::text: a delta holds back what may still change (an incomplete
// UTF-8 character, a decoder's U+FFFD for one, the start of a stop string) until it is final.
struct StreamDelta {
  std::string text;
  std::vector<TokenLogprob> logprobs;  // the tokens this text completes (a final stop token never)
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;  // echo: on a first delta of their own
  std::optional<FinishReason> finish;  // set on the last delta
  int64_t completion_tokens = 0;       // generated so far (a final stop token included)
  std::exception_ptr error;            // the generation failed: no delta follows
};

struct GenerationRequest {
  std::vector<int64_t> prompt;  // token ids, not empty
  int64_t max_tokens = 16;      // >= 0
  double temperature = 0.0;     // 0 = greedy (argmax, as greedy_generate)
  double top_p = 1.0;           // sampling: the smallest set of tokens holding this much probability
  uint64_t seed = 0;            // sampling seed (temperature > 0)
  std::vector<std::string> stop;     // stop strings, not included in the text
  std::vector<int64_t> stop_ids;     // tokens that end generation (kept in `tokens`)
  int top_logprobs = 0;              // alternatives reported per token
  bool logprobs = false;             // report the chosen tokens' log-probs
  bool prompt_logprobs = false;      // teacher-forced log-probs of the prompt tokens (echo)
  // Streaming: called on the generating thread with every delta (it must not block); the last
  // one has `finish` or `error` set.
  std::function<void(StreamDelta)> on_delta;
  // Stops this request alone between two tokens (finish: cancelled; no further delta), e.g.
  // when its client has gone; the other requests of its batch go on.
  std::stop_token cancel;
};

struct GenerationResult {
  std::vector<int64_t> tokens;  // generated ids (a final stop token included)
  std::string text;             // decoded continuation, cut before a matched stop string
  FinishReason finish = FinishReason::length;
  std::vector<TokenLogprob> logprobs;                      // per generated token, when asked
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;  // per prompt token; the first has none
};

// How much of a continuation's text a stream can send now: all of it but an incomplete UTF-8
// character at its end, trailing U+FFFD (a lossy decoder's stand-in for one) and a trailing
// beginning of one of the stop strings (which the next tokens may complete).
size_t final_text_length(std::string_view text, std::span<const std::string> stops);

}  // namespace pizza::serve
