#include "api/client.h"

#include "api/config.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

namespace pizza::api {

int64_t estimate_tokens(std::string_view text) {
  auto chars = std::count_if(text.begin(), text.end(),
                             [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  return (static_cast<int64_t>(chars) + 3) / 4;
}

ApiClient::ApiClient(ClientOptions options) : options_(std::move(options)) {
  validate_base_url(options_.base_url, "base URL");
  if (options_.cache_dir) cache_.emplace(*options_.cache_dir);
  options_.transport.api_key = options_.api_key;
  options_.transport.fail_fast = true;
  if (!options_.transport.logger) options_.transport.logger = spdlog::default_logger();
  if (options_.api_key.empty() && !is_loopback(options_.base_url)) {
    options_.transport.logger->warn(
        "no API key for {}: set OPENAI_API_KEY or pass --api-key-file if the server needs one",
        options_.base_url);
  }
}

void ApiClient::disable_cache(const std::string& why) {
  options_.transport.logger->warn("the API cache at {} is unusable ({}); continuing without it",
                                  cache_->dir().string(), why);
  cache_.reset();
}

// What pizza keeps of a server's strings (the result's extra.server) is redacted too: the body
// arrives redacted, but a JSON \u escape could spell the key in a decoded field.
Completion ApiClient::parse(std::string_view body, const CompletionRequest& request) const {
  Completion c = parse_completion(body, request);
  c.model = redact(std::move(c.model), options_.api_key);
  c.system_fingerprint = redact(std::move(c.system_fingerprint), options_.api_key);
  c.finish_reason = redact(std::move(c.finish_reason), options_.api_key);
  return c;
}

ApiClient::Prepared ApiClient::prepare(const CompletionRequest& request) const {
  Prepared p;
  p.body = serialize_body(request);
  p.key = cache_key(options_.base_url, request.model, p.body);
  return p;
}

std::vector<Completion> ApiClient::complete_all(std::span<const CompletionRequest> requests,
                                                const Progress& progress) {
  const auto& logger = options_.transport.logger;
  std::vector<std::optional<Completion>> out(requests.size());
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  std::vector<HttpRequest> to_send;
  std::vector<size_t> sent_for;                   // to_send[j] answers requests[sent_for[j]]
  std::map<std::string, size_t> first_with_key;   // duplicates are sent once
  std::vector<std::pair<size_t, size_t>> copies;  // (duplicate, original)
  for (size_t i = 0; i < requests.size(); ++i) {
    prepared.push_back(prepare(requests[i]));
    const Prepared& p = prepared.back();
    if (auto [it, inserted] = first_with_key.emplace(p.key, i); !inserted) {
      copies.emplace_back(i, it->second);
      continue;
    }
    if (cache_) {
      std::optional<std::string> hit;
      try {
        hit = cache_->get(p.key);
      } catch (const std::exception& e) {
        disable_cache(e.what());
      }
      if (hit) {
        try {
          out[i] = parse(*hit, requests[i]);
          continue;
        } catch (const ApiError& e) {
          logger->warn("ignoring unusable cache entry {}: {}", cache_->path_of(p.key).string(), e.what());
        }
      }
    }
    to_send.push_back({options_.base_url + std::string(endpoint_path(requests[i].endpoint)), p.body,
                       static_cast<double>(estimate_tokens(requests[i].prompt) + requests[i].max_tokens)});
    sent_for.push_back(i);
  }

  TransportOptions transport = options_.transport;
  transport.on_success = [&](size_t j, const HttpResult& result) {
    size_t i = sent_for[j];
    out[i] = parse(result.body, requests[i]);  // throws when unusable (MalformedResponse: retried)
    if (!cache_) return;
    // An unwritable cache (read-only, full disk, a file in the way) costs only the caching.
    try {
      cache_->put(prepared[i].key, result.body);
    } catch (const std::exception& e) {
      disable_cache(e.what());
    }
  };
  const size_t answered = requests.size() - to_send.size();
  Progress sent_progress;
  if (progress) {
    progress(answered, requests.size());
    sent_progress = [&](size_t done, size_t) { progress(answered + done, requests.size()); };
  }
  last_sent_ = to_send.size();
  logger->debug("{} requests: {} answered from the cache or duplicates, {} to send", requests.size(),
                answered, to_send.size());
  run_all(to_send, transport, sent_progress);

  for (auto [dup, original] : copies) out[dup] = out[original];
  std::vector<Completion> completions;
  completions.reserve(out.size());
  for (auto& c : out) completions.push_back(std::move(*c));
  return completions;
}

DryRunEstimate ApiClient::dry_run(std::span<const CompletionRequest> requests) const {
  DryRunEstimate est;
  std::map<std::string, bool> seen;
  for (const auto& r : requests) {
    Prepared p = prepare(r);
    if (!seen.emplace(p.key, true).second) continue;
    ++est.requests;
    if (cache_ && cache_->contains(p.key)) {
      ++est.cached;
      continue;
    }
    ++est.to_send;
    est.prompt_tokens += estimate_tokens(r.prompt);
    est.completion_tokens += r.max_tokens;
  }
  return est;
}

}  // namespace pizza::api
