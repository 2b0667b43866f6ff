// `pizza serve`: an OpenAI-compatible HTTP server (POST /v1/chat/completions, POST
// /v1/completions, GET /v1/models) on the local engine. Connection threads (serve/connections.h)
// receive requests under deadlines, parse and validate them and wait; one BatchQueue worker runs
// the queued requests in batches.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "model/model.h"
#include "openai/chat_template.h"
#include "openai/openai.h"

namespace pizza::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                            // 0 = any free port (see Server::port())
  std::string served_model_name;              // default: the model directory's name
  std::optional<ChatTemplate> chat_template;  // default: the model's (default_chat_template)
  int max_batch = 8;                          // requests run together in one batch
  int max_queue = 64;                         // requests waiting beyond the running batch; more get 503
  size_t max_connections = 256;               // connections open at once; more get 503
  // A request's line and headers must arrive within header_timeout of its first byte, its body
  // within body_timeout of the headers' end, however slowly the bytes trickle in (else 408).
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{60'000};
  // After stop(), requests in flight have this long to finish; then generations are cancelled
  // between tokens and their clients answered 503.
  std::chrono::milliseconds shutdown_timeout{30'000};
};

// The model as requests see it (name, chat template, context, vocabulary, stop ids...), read
// from the loaded model once; it refers to lm's tokenizer, so lm must outlive it.
ServedModel served_model(const LanguageModel& lm, const ServeOptions& opts);

class Server {
 public:
  // Binds and listens on host:port right away; InputError naming the address when it cannot
  // (e.g. the port is already in use). The model must outlive the server.
  Server(const LanguageModel& lm, ServeOptions opts);
  ~Server();  // stop(), then waits for run() to return
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  std::string url() const;  // http://host:port
  const std::string& model_name() const;
  ChatTemplate chat_template() const;
  size_t largest_batch() const;  // the most requests answered by one batch so far
  // Streamed requests whose generation stopped early because their client went away.
  size_t cancelled_requests() const;

  // Serves until stop() (blocking). Requests accepted before stop() are answered: with their
  // result when it comes within shutdown_timeout, else with a 503 (generation cancelled).
  void run();
  // Stops accepting connections and starts the shutdown_timeout clock; run() returns once every
  // connection is done. Thread-safe and idempotent; may be called before, during or after run().
  void stop();
  // Whether shutdown_timeout ran out and requests still in flight were cancelled.
  bool shutdown_timed_out() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pizza::serve
