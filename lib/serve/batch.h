// The generation engine behind `pizza serve`: one batch of requests runs as one left-padded
// prefill plus KV-cached decoding (greedy and sampled rows side by side), and a queue whose
// worker thread gathers pending requests into such batches.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/model.h"

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

// The server cannot take or finish a request now (its queue is full, or it is shutting down);
// the client may retry later, elsewhere or once the server is back (HTTP 503).
class Unavailable : public std::runtime_error {
 public:
  Unavailable(std::string code, const std::string& message) : std::runtime_error(message), code(std::move(code)) {}
  std::string code;  // "server_overloaded" or "server_shutting_down"
};

// How much of a continuation's text a stream can send now: all of it but an incomplete UTF-8
// character at its end, trailing U+FFFD (a lossy decoder's stand-in for one) and a trailing
// beginning of one of the stop strings (which the next tokens may complete).
size_t final_text_length(std::string_view text, std::span<const std::string> stops);

// Runs the requests as one batch. Each row's result equals running it alone up to float
// rounding of the padded batch; a sampled row depends only on its own seed. Once `cancel` is
// requested the batch stops before its next token and throws Unavailable (streamed requests are
// not told: their caller is).
std::vector<GenerationResult> run_batch(const LanguageModel& lm, std::span<const GenerationRequest> requests,
                                        std::stop_token cancel = {});

// Serialises access to the model: submit() queues a request; one worker thread takes up to
// max_batch queued requests at a time and runs them with run_batch. At most max_queue requests
// wait beyond the batch that runs: a burst larger than that is refused at once (Unavailable)
// rather than left waiting for minutes.
class BatchQueue {
 public:
  BatchQueue(const LanguageModel& lm, int max_batch, int max_queue);
  ~BatchQueue();  // finishes every queued request, then joins the worker
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // Unavailable when max_queue requests already wait or after cancel().
  std::future<GenerationResult> submit(GenerationRequest request);
  // Stops the running batch before its next token and fails it and every queued request with
  // Unavailable; later submits fail the same way. Thread-safe and idempotent.
  void cancel();
  // The most requests run together so far (observability, and proof in tests that batching happens).
  size_t largest_batch() const { return largest_batch_; }
  // Requests stopped by their own cancel token before they finished (their clients went away).
  size_t cancelled_requests() const { return cancelled_; }

 private:
  struct Pending {
    GenerationRequest request;
    std::promise<GenerationResult> promise;
  };
  void work();
  // Fails a request: its future, and its stream when it has one.
  static void fail(GenerationRequest& request, std::promise<GenerationResult>& promise, std::exception_ptr error);

  const LanguageModel& lm_;
  size_t max_batch_, max_queue_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::stop_source cancel_;  // requested by cancel(); the running batch checks it between tokens
  std::atomic<size_t> largest_batch_{0};
  std::atomic<size_t> cancelled_{0};
  std::thread worker_;  // last: started after the state above exists
};

}  // namespace pizza::serve
