// The generation engine behind `pizza serve`: one batch of requests runs as one left-padded
// prefill plus KV-cached decoding (greedy and sampled rows side by side), and a queue whose
// worker thread gathers pending requests into such batches.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"

namespace pizza::serve {

struct GenerationRequest {
  std::vector<int64_t> prompt;  // token ids, not empty
  int64_t max_tokens = 16;      // >= 0
  double temperature = 0.0;     // 0 = greedy (argmax, as greedy_generate)
  uint64_t seed = 0;            // sampling seed (temperature > 0)
  std::vector<std::string> stop;     // stop strings, not included in the text
  std::vector<int64_t> stop_ids;     // tokens that end generation (kept in `tokens`)
  int top_logprobs = 0;              // alternatives reported per token
  bool logprobs = false;             // report the chosen tokens' log-probs
  bool prompt_logprobs = false;      // teacher-forced log-probs of the prompt tokens (echo)
};

struct TokenLogprob {
  int64_t id = 0;
  double logprob = 0.0;
  std::vector<std::pair<int64_t, double>> top;  // best first
};

enum class FinishReason { stop, length };

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

// Runs the requests as one batch. Each row's result equals running it alone up to float
// rounding of the padded batch; a sampled row depends only on its own seed. Once `cancel` is
// requested the batch stops before its next token and throws Unavailable.
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

 private:
  struct Pending {
    GenerationRequest request;
    std::promise<GenerationResult> promise;
  };
  void work();

  const LanguageModel& lm_;
  size_t max_batch_, max_queue_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::stop_source cancel_;  // requested by cancel(); the running batch checks it between tokens
  std::atomic<size_t> largest_batch_{0};
  std::thread worker_;  // last: started after the state above exists
};

}  // namespace pizza::serve
