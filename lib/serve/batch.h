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
#include "openai/generation.h"

namespace pizza::serve {

// The server cannot take or finish a request now (its queue is full, or it is shutting down);
// the client may retry later, elsewhere or once the server is back (HTTP 503).
class Unavailable : public std::runtime_error {
 public:
  Unavailable(std::string code, const std::string& message) : std::runtime_error(message), code(std::move(code)) {}
  std::string code;  // "server_overloaded" or "server_shutting_down"
};

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
