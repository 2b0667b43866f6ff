#include "serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "serve/batch.h"
#include "serve/connections.h"
#include "openai/openai.h"
#include "util/error.h"

namespace pizza::serve {

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e), "application/json");
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string fingerprint(const LanguageModel& lm) {
  const auto& rt = lm.runtime();
  return std::string("fp_pizza_") + PIZZA_VERSION + "_" + std::string(c10::toString(rt.dtype)) + "_" + rt.device.str();
}

// What a failed request is answered with.
ApiError to_api_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const ApiError& e) {
    return e;
  } catch (const Unavailable& e) {
    return ApiError(503, first_line(e.what()), "", e.code, "server_error");
  } catch (const InputError& e) {
    return ApiError(400, first_line(e.what()));
  } catch (const std::exception& e) {
    return ApiError(500, "internal error: " + first_line(e.what()), "", "", "server_error");
  } catch (...) {
    return ApiError(500, "internal error", "", "", "server_error");
  }
}

// How long a stream may stay silent before a comment is sent: it keeps proxies from timing the
// connection out while the request waits in the queue, and a client that has gone is noticed
// (its writes fail) and its request dropped.
constexpr std::chrono::seconds kHeartbeat{5};

// One streamed response: the engine's deltas on their way from the generating thread to the
// connection's thread, which encodes and writes them.
class SseStream {
 public:
  SseStream(ApiRequest request, const ServedModel& model, std::string id, int64_t created)
      : request_(std::move(request)), encoder_(request_, model, std::move(id), created) {}

  // The request to queue: it delivers into this stream and stops when the client has gone.
  GenerationRequest generation(const std::shared_ptr<SseStream>& self) {
    auto g = request_.generation;
    g.on_delta = [self](StreamDelta d) { self->push(std::move(d)); };
    g.cancel = client_gone_.get_token();
    return g;
  }

  // Writes the whole stream in this one call. httplib checks between calls whether the server
  // is stopping and ends a stream there, while streams in flight must be allowed to finish.
  // False when the client is gone (a write failed).
  bool pump(httplib::DataSink& sink) {
    auto write = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
    if (!write(encoder_.start())) return false;
    for (;;) {
      auto d = pop();
      if (!d) {
        if (!write(StreamEncoder::heartbeat())) return false;
        continue;
      }
      if (d->error) {
        if (!write(StreamEncoder::error(to_api_error(d->error)))) return false;
        break;
      }
      if (!write(encoder_.delta(*d))) return false;
      if (d->finish) break;
    }
    sink.done();
    return true;
  }

  // The response is over, written or not: a generation still running for it stops.
  void close() { client_gone_.request_stop(); }

 private:
  void push(StreamDelta d) {
    {
      std::lock_guard lock(mutex_);
      deltas_.push_back(std::move(d));
    }
    cv_.notify_one();
  }
  // The next delta, or nullopt after kHeartbeat without one.
  std::optional<StreamDelta> pop() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, kHeartbeat, [&] { return !deltas_.empty(); })) return std::nullopt;
    auto d = std::move(deltas_.front());
    deltas_.pop_front();
    return d;
  }

  ApiRequest request_;
  StreamEncoder encoder_;  // refers to request_
  std::stop_source client_gone_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<StreamDelta> deltas_;
};

}  // namespace

ServedModel served_model(const LanguageModel& lm, const ServeOptions& opts) {
  const auto& tok = lm.tokenizer();
  const int64_t context = lm.config().max_position_embeddings;
  return ServedModel{
      .tokenizer = tok,
      .context_length = context,
      .vocab_size = lm.config().vocab_size,
      .stop_ids = lm.stop_ids(),
      .root = lm.path().string(),
      .name = opts.served_model_name.empty() ? lm.path().filename().string() : opts.served_model_name,
      .chat_template = opts.chat_template.value_or(default_chat_template(lm.path(), lm.config().model_type, &tok)),
      .fingerprint = fingerprint(lm),
      .created = static_cast<int64_t>(std::time(nullptr)),
      .max_prompt_bytes = max_prompt_bytes(tok, context),
  };
}

struct Server::Impl {
  Impl(const LanguageModel& lm, ServeOptions o)
      : opts(std::move(o)),
        model(served_model(lm, opts)),
        queue(lm, opts.max_batch, opts.max_queue),
        http(ConnectionLimits{opts.header_timeout, opts.body_timeout, opts.max_connections}),
        id_prefix(std::random_device{}()) {}

  void handle(Endpoint ep, const httplib::Request& req, httplib::Response& res) {
    try {
      auto api = parse_request(ep, req.body, model);
      auto id = std::string(ep == Endpoint::chat ? "chatcmpl-" : "cmpl-") + hex(id_prefix) + hex(++counter);
      const auto created = static_cast<int64_t>(std::time(nullptr));
      if (api.stream) return stream(std::move(api), std::move(id), created, res);
      auto result = queue.submit(api.generation).get();
      res.set_content(response_body(api, result, model, id, created), "application/json");
    } catch (...) {
      const auto e = to_api_error(std::current_exception());
      if (e.status == 503) res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
      reply_error(res, e);
    }
  }

  // Queues the request (a full queue is still a 503 with a JSON body), then answers with
  // server-sent events written as the tokens come.
  void stream(ApiRequest api, std::string id, int64_t created, httplib::Response& res) {
    auto sse = std::make_shared<SseStream>(std::move(api), model, std::move(id), created);
    queue.submit(sse->generation(sse));  // its future is not needed: the stream gets everything
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",  // exactly this: httplib compresses other text/* types, which would hold chunks back
        [sse](size_t, httplib::DataSink& sink) { return sse->pump(sink); }, [sse](bool) { sse->close(); });
  }

  void routes() {
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(models_body(model), "application/json");
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.matches[1] == model.name) return res.set_content(model_body(model), "application/json");
      reply_error(res, ApiError(404, "The model `" + std::string(req.matches[1]) + "` does not exist.", "model", "model_not_found"));
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(Endpoint::chat, req, res); });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(Endpoint::completions, req, res); });
    // Unknown routes (and any other error without a body) get an OpenAI-style error object.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const std::string what = req.method + " " + req.path;
      reply_error(res, res.status == 404 ? ApiError(404, "Invalid URL (" + what + ")", "", "unknown_url")
                                         : ApiError(res.status, "Request failed (" + what + ")"));
      return httplib::Server::HandlerResponse::Handled;
    }));
  }

  void bind() {
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
    // server share a port that is already taken instead of failing.
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_socket = sock;
    });
    // A body can hold at most what the context can: the longest prompt that fits, six bytes per
    // byte if every one is \u-escaped, plus room for the other fields (bigger bodies get 413).
    http.set_payload_max_length(std::min(size_t{64} << 20, 6 * model.max_prompt_bytes + (size_t{1} << 20)));
    errno = 0;
    if (opts.port == 0) {
      port = http.bind_to_any_port(opts.host);
    } else {
      port = http.bind_to_port(opts.host, opts.port) ? opts.port : -1;
    }
    if (port < 0) {
      const int err = errno;
      std::string reason = err == EADDRINUSE ? "the address is already in use (choose another --port)"
                           : err != 0        ? std::string(std::strerror(err))
                                             : "the address is not available";
      throw InputError("cannot listen on " + opts.host + ":" + std::to_string(opts.port) + ": " + reason);
    }
    // httplib listens with a backlog of 5: a burst of clients would overflow it and see their
    // connections stall or fail. Listening again on the bound socket only raises the backlog.
    if (listen_socket >= 0) ::listen(listen_socket, SOMAXCONN);
  }

  // The grace period after stop(): once shutdown_timeout passes with run() still serving,
  // requests still being received are dropped and generations cancelled between tokens.
  void start_shutdown_clock() {
    shutdown_clock = std::jthread([this](std::stop_token st) {
      std::unique_lock lock(mutex);
      if (cv.wait_for(lock, st, opts.shutdown_timeout, [&] { return !running; }) || st.stop_requested()) return;
      timed_out = true;
      lock.unlock();
      http.abort();
      queue.cancel();
    });
  }

  ServeOptions opts;
  ServedModel model;
  BatchQueue queue;
  HttpServer http;  // after queue: destroyed first, once no handler waits on the queue
  int port = -1;
  socket_t listen_socket = -1;  // the listening socket (owned by http)
  uint64_t id_prefix;
  std::atomic<uint64_t> counter{0};

  std::mutex mutex;
  std::condition_variable_any cv;
  bool stop_requested = false, running = false, http_stopped = false;
  std::atomic<bool> timed_out{false};
  std::jthread shutdown_clock;  // last: destroyed (stopped and joined) before what it uses
};

Server::Server(const LanguageModel& lm, ServeOptions opts) : impl_(std::make_unique<Impl>(lm, std::move(opts))) {
  impl_->routes();
  impl_->bind();
}

Server::~Server() {
  stop();
  std::unique_lock lock(impl_->mutex);
  impl_->cv.wait(lock, [&] { return !impl_->running; });
}

int Server::port() const { return impl_->port; }
std::string Server::url() const { return "http://" + impl_->opts.host + ":" + std::to_string(impl_->port); }
const std::string& Server::model_name() const { return impl_->model.name; }
ChatTemplate Server::chat_template() const { return impl_->model.chat_template; }
size_t Server::largest_batch() const { return impl_->queue.largest_batch(); }
size_t Server::cancelled_requests() const { return impl_->queue.cancelled_requests(); }

void Server::run() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stop_requested) return;
    impl_->running = true;
  }
  // Returns once stop() closed the listening socket and every handler thread has finished.
  const bool ok = impl_->http.serve();
  bool stopped = false;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->running = false;
    stopped = impl_->stop_requested;
  }
  impl_->cv.notify_all();
  if (!ok && !stopped) throw InputError("pizza serve: the HTTP server stopped unexpectedly on " + url());
}

void Server::stop() {
  std::unique_lock lock(impl_->mutex);
  impl_->stop_requested = true;
  // httplib ignores stop() until its accept loop is running: wait for that (or for run() to end).
  while (impl_->running && !impl_->http.is_running()) {
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    lock.lock();
  }
  if (impl_->running && !impl_->http_stopped) {
    impl_->http_stopped = true;
    impl_->http.drain();
    impl_->http.stop();
    impl_->start_shutdown_clock();
  }
}

bool Server::shutdown_timed_out() const { return impl_->timed_out; }

}  // namespace pizza::serve
