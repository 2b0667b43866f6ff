#include "api/transport.h"

#include "api/response.h"
#include "util/curl.h"

#include <curl/curl.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>

namespace pizza::api {

namespace {

using Clock = std::chrono::steady_clock;

// A server asking for more than this is still honoured, but only up to it.
constexpr Seconds kMaxRetryAfter{300};
// Waits at least this long are announced on stderr (info level), shorter ones only in debug logs.
constexpr Seconds kAnnounceWait{3};

struct Transfer {
  size_t index = 0;
  int attempt = 0;
  CurlEasyPtr easy;
  CurlSlistPtr headers;
  std::string body;
  size_t max_body = 0;
  bool too_large = false;  // the body passed max_body; the transfer was aborted
  Headers response_headers;
  char errbuf[CURL_ERROR_SIZE] = {};
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (size * count > t->max_body - t->body.size()) {
    t->too_large = true;
    return 0;  // curl aborts the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<Headers*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) headers->clear();  // a new response begins (e.g. after 100)
  if (auto header = parse_header_line(line)) headers->insert(std::move(*header));
  return size * count;
}

bool is_json(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  return !parser.parse(simdjson::padded_string(body)).get(doc);
}

// Transport failures that the same request can never get past.
bool transport_error_is_final(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE: return true;
    default: return false;
  }
}

bool status_is_retryable(long status) {
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

// The curl session: the multi handle and the transfers attached to it. Its destructor detaches
// everything, so an exception thrown mid-run (quota, 401) leaks nothing.
class Session {
 public:
  explicit Session(const TransportOptions& options) : options_(options), multi_(curl_multi_init()) {
    if (!multi_) throw ApiError("could not initialise libcurl");
    curl_multi_setopt(multi_.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_.get(), CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options.concurrency));
    curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(2 * options.concurrency));
  }
  ~Session() {
    for (auto& [easy, transfer] : active_) curl_multi_remove_handle(multi_.get(), easy);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  size_t in_flight() const { return active_.size(); }

  void start(size_t index, int attempt, const HttpRequest& request) {
    auto t = std::make_unique<Transfer>();
    t->index = index;
    t->attempt = attempt;
    t->max_body = options_.max_response_bytes;
    t->easy.reset(curl_easy_init());
    if (!t->easy) throw ApiError("could not initialise a libcurl handle");
    CURL* e = t->easy.get();
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:");  // no 100-continue round trip for large bodies
    if (!options_.api_key.empty())
      h = curl_slist_append(h, ("Authorization: Bearer " + options_.api_key).c_str());
    t->headers.reset(h);
    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pizza/" PIZZA_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    // Prefer multiplexing over a new connection, but only where HTTP/2 can be negotiated
    // (TLS ALPN): on plain http:// curl cannot tell before a response arrives and would hold
    // the first window of requests back behind the first one.
    if (request.url.starts_with("https://")) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t->response_headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    if (CURLMcode mc = curl_multi_add_handle(multi_.get(), e)) {
      throw ApiError(std::string("libcurl refused a request: ") + curl_multi_strerror(mc));
    }
    active_.emplace(e, std::move(t));
  }

  // Drives the transfers for up to `wait`, returning those that finished with their result.
  std::vector<std::pair<std::unique_ptr<Transfer>, CURLcode>> step(Seconds wait) {
    int running = 0;
    curl_multi_perform(multi_.get(), &running);
    auto done = collect();
    if (done.empty()) {
      auto ms = static_cast<int>(std::clamp(wait.count(), 0.0, 1.0) * 1000);
      curl_multi_poll(multi_.get(), nullptr, 0, ms, nullptr);
      curl_multi_perform(multi_.get(), &running);
      done = collect();
    }
    return done;
  }

 private:
  std::vector<std::pair<std::unique_ptr<Transfer>, CURLcode>> collect() {
    std::vector<std::pair<std::unique_ptr<Transfer>, CURLcode>> done;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = active_.find(msg->easy_handle);
      CURLcode code = msg->data.result;  // read before removing: msg dies with the handle
      curl_multi_remove_handle(multi_.get(), msg->easy_handle);
      done.emplace_back(std::move(it->second), code);
      active_.erase(it);
    }
    return done;
  }

  const TransportOptions& options_;
  CurlMultiPtr multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> active_;
};

struct Waiting {
  size_t index;
  int attempt;
  Clock::time_point ready;
};

// What one finished attempt means for its request.
struct Outcome {
  bool success = false;
  bool retry = false;
  std::string error;                   // why it failed (for the log / the final result)
  std::optional<Seconds> retry_after;  // the server's wish
};

Outcome classify(const Transfer& t, CURLcode code, long status, const TransportOptions& options,
                 const std::string& url, std::chrono::system_clock::time_point wall_now) {
  Outcome o;
  if (t.too_large) {
    o.error = "the response from " + url + " is larger than --max-response-bytes " +
              std::to_string(options.max_response_bytes) + " bytes; transfer aborted";
    return o;
  }
  if (code != CURLE_OK) {
    o.retry = !transport_error_is_final(code);
    o.error = std::string(curl_easy_strerror(code)) + (t.errbuf[0] ? std::string(": ") + t.errbuf : "") +
              " (" + url + ")";
    return o;
  }
  if (status >= 200 && status < 300) {
    if (is_json(t.body)) {
      o.success = true;
    } else {
      o.retry = true;  // most often a body cut short
      o.error = "HTTP " + std::to_string(status) + " with a body that is not complete JSON: " +
                snippet(t.body, options.api_key) + " (" + url + ")";
    }
    return o;
  }
  auto err = parse_error_object(t.body);
  if (status == 429 && err && err->code == "insufficient_quota") {
    throw QuotaExceeded("the API account is out of quota (HTTP 429 insufficient_quota at " + url +
                        "); stopping: " + snippet(err->message, options.api_key));
  }
  if (status == 401) {
    throw ApiError("the server at " + url + " refused the request as unauthorized (" +
                   describe_http_failure(status, t.body, options.api_key) +
                   "); set OPENAI_API_KEY or pass --api-key-file with a valid key");
  }
  o.retry = status_is_retryable(status);
  o.error = describe_http_failure(status, t.body, options.api_key) + " (" + url + ")";
  o.retry_after = parse_retry_after(t.response_headers, wall_now);
  return o;
}

}  // namespace

std::vector<HttpResult> run_all(std::span<const HttpRequest> requests, const TransportOptions& options,
                                const Progress& progress) {
  const auto logger = options.logger ? options.logger : spdlog::default_logger();
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto now = [&] { return options.hooks.now ? options.hooks.now() : Clock::now(); };
  auto wall_now = [&] {
    return options.hooks.wall_now ? options.hooks.wall_now() : std::chrono::system_clock::now();
  };
  auto random01 = [&] { return options.hooks.random01 ? options.hooks.random01() : uniform(rng); };
  auto sleep = [&](Seconds d) {
    if (options.hooks.sleep) return options.hooks.sleep(d);
    std::this_thread::sleep_for(d);
  };
  const size_t concurrency = static_cast<size_t>(std::max(1, options.concurrency));

  std::vector<HttpResult> results(requests.size());
  std::deque<size_t> fresh;
  for (size_t i = 0; i < requests.size(); ++i) fresh.push_back(i);
  std::vector<Waiting> delayed;  // retries waiting for their backoff
  TokenBucket rpm(options.rpm, now()), tpm(options.tpm, now());
  Clock::time_point hold_until = now();  // the server's x-ratelimit-* headers asked us to pause
  size_t finished = 0;
  Session session(options);
  // The waiting budget (max_wait_s): every wait starts now, so the wall-clock time during which
  // something waits is the sum of how far each new wait reaches past the furthest one before.
  const Seconds max_wait(std::max(0.0, options.max_wait_s));
  Seconds waited(0);
  Clock::time_point wait_horizon = now();
  auto wait_cost = [&](Seconds d) {
    Clock::time_point from = std::max(now(), wait_horizon), until = now() + std::chrono::duration_cast<Clock::duration>(d);
    return until > from ? Seconds(until - from) : Seconds(0);
  };
  auto charge_wait = [&](Seconds d) {
    waited += wait_cost(d);
    wait_horizon = std::max(wait_horizon, now() + std::chrono::duration_cast<Clock::duration>(d));
  };

  auto finish = [&](size_t index, HttpResult result) {
    if (!result.ok() && options.fail_fast) {
      throw ApiError("request " + std::to_string(index + 1) + " of " + std::to_string(requests.size()) +
                     " failed after " + std::to_string(result.attempts) + " attempt(s): " + result.error);
    }
    results[index] = std::move(result);
    ++finished;
    if (progress) progress(finished, requests.size());
  };

  while (finished < requests.size()) {
    // Fill the window; `next_start` is when something blocked could start.
    std::optional<Clock::time_point> next_start;
    while (session.in_flight() < concurrency) {
      Clock::time_point t = now();
      auto ready = std::min_element(delayed.begin(), delayed.end(),
                                    [](const Waiting& a, const Waiting& b) { return a.ready < b.ready; });
      bool retry_ready = ready != delayed.end() && ready->ready <= t;
      if (!retry_ready && fresh.empty()) {
        if (ready != delayed.end()) next_start = ready->ready;
        break;
      }
      size_t index = retry_ready ? ready->index : fresh.front();
      const HttpRequest& request = requests[index];
      Seconds limit_wait = std::max(rpm.wait(1, t), tpm.wait(request.est_tokens, t));
      if (hold_until > t || limit_wait > Seconds(0)) {
        next_start = std::max(hold_until, t + std::chrono::duration_cast<Clock::duration>(limit_wait));
        break;
      }
      rpm.take(1, t);
      tpm.take(request.est_tokens, t);
      int attempt = 0;
      if (retry_ready) {
        attempt = ready->attempt;
        delayed.erase(ready);
      } else {
        fresh.pop_front();
      }
      logger->debug("POST {} (request {}, attempt {}, {} bytes, Authorization: {})", request.url, index + 1,
                    attempt + 1, request.body.size(), options.api_key.empty() ? "none" : "Bearer [redacted]");
      session.start(index, attempt, request);
    }

    if (session.in_flight() == 0) {
      // Nothing in flight, nothing startable and nothing waiting, yet requests unfinished: a
      // scheduler bug. Fail loudly rather than return empty results as successes.
      if (!next_start) throw std::logic_error("pizza api: request scheduler stalled");
      sleep(std::chrono::duration_cast<Seconds>(*next_start - now()));
      continue;
    }
    Seconds wait = next_start ? std::chrono::duration_cast<Seconds>(*next_start - now()) : Seconds(1);
    for (auto& [transfer, code] : session.step(wait)) {
      const HttpRequest& request = requests[transfer->index];
      long status = 0;
      curl_easy_getinfo(transfer->easy.get(), CURLINFO_RESPONSE_CODE, &status);
      // Redacted once, here, before anything reads the body: every message, log line, the
      // parser, on_success and the cache see the key as "[redacted]".
      transfer->body = redact(std::move(transfer->body), options.api_key);
      Outcome o = classify(*transfer, code, status, options, request.url, wall_now());
      if (auto pause = ratelimit_pause(transfer->response_headers, session.in_flight(), request.est_tokens)) {
        // Past the budget the hold shrinks to what is left of it (the requests then meet the
        // server's 429s, whose retries fail on the budget).
        if (Seconds cost = wait_cost(*pause), left = max_wait - waited; cost > left)
          *pause = std::max(Seconds(0), *pause - cost + left);
        charge_wait(*pause);
        hold_until = std::max(hold_until, now() + std::chrono::duration_cast<Clock::duration>(*pause));
        logger->log(*pause >= kAnnounceWait ? spdlog::level::info : spdlog::level::debug,
                    "the server's x-ratelimit-remaining-* headers say its budget is spent; pausing new requests "
                    "for {:.1f} s",
                    pause->count());
      }
      HttpResult result{status, std::move(transfer->body), std::move(transfer->response_headers), "",
                        transfer->attempt + 1};
      if (o.success && options.on_success) {
        try {
          options.on_success(transfer->index, result);
        } catch (const MalformedResponse& e) {  // a bad answer: retried like a truncated body
          o = Outcome{false, true, std::string(e.what()) + " (" + request.url + ")", std::nullopt};
        }
      }
      if (o.success) {
        finish(transfer->index, std::move(result));
        continue;
      }
      Seconds delay = o.retry_after ? std::min(*o.retry_after, kMaxRetryAfter)
                                    : backoff_delay(options.retry, transfer->attempt, random01());
      if (o.retry && transfer->attempt < options.retry.max_retries && wait_cost(delay) > max_wait - waited) {
        o.retry = false;
        o.error += "; not retried: waiting " + fmt::format("{:.1f}", delay.count()) +
                   " s more would pass the --max-wait budget of " + fmt::format("{:g}", max_wait.count()) +
                   " s (" + fmt::format("{:.1f}", waited.count()) + " s spent)";
      }
      if (o.retry && transfer->attempt < options.retry.max_retries) {
        charge_wait(delay);
        logger->info("request {} failed ({}); retry {} of {} in {:.2f} s{}", transfer->index + 1, o.error,
                    transfer->attempt + 1, options.retry.max_retries, delay.count(),
                    o.retry_after ? " (the server's Retry-After)" : "");
        delayed.push_back({transfer->index, transfer->attempt + 1,
                           now() + std::chrono::duration_cast<Clock::duration>(delay)});
      } else {
        result.error = std::move(o.error);
        finish(transfer->index, std::move(result));
      }
    }
  }
  return results;
}

}  // namespace pizza::api
