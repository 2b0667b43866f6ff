// The `pizza api` client: serialise requests, answer what it can from the cache, send the
// rest through the transport, parse every response into a Completion, cache it as it arrives
// (so an aborted run keeps its progress and a rerun sends nothing). A cache that cannot be
// read or written is dropped with one warning; the run goes on without it.
#pragma once

#include "api/cache.h"
#include "api/request.h"
#include "api/response.h"
#include "api/transport.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pizza::api {

struct ClientOptions {
  std::string base_url;                            // resolved (see config.h), no trailing slash
  std::string api_key;                             // "" : none
  std::optional<std::filesystem::path> cache_dir;  // nullopt: no cache (--no-cache)
  TransportOptions transport;                      // its api_key and fail_fast are set by the client
};

// What a run would cost (--dry-run). Token counts are estimates: prompt tokens as ceil(chars/4)
// (characters = UTF-8 code points; a rough rule of thumb for English with BPE tokenizers),
// completion tokens as max_tokens (an upper bound).
struct DryRunEstimate {
  size_t requests = 0;            // distinct requests
  size_t cached = 0;              // answered by the cache
  size_t to_send = 0;             // cache misses: requests that would be sent
  int64_t prompt_tokens = 0;      // of the requests to send
  int64_t completion_tokens = 0;  // of the requests to send
};

// ceil(code points / 4).
int64_t estimate_tokens(std::string_view text);

class ApiClient {
 public:
  explicit ApiClient(ClientOptions options);

  // Completions for `requests`, in order. Identical requests are sent once. Throws ApiError
  // (a request failed for good, or a response is unusable, e.g. has no logprobs), and
  // QuotaExceeded; responses received before the failure stay cached.
  std::vector<Completion> complete_all(std::span<const CompletionRequest> requests,
                                       const Progress& progress = {});

  DryRunEstimate dry_run(std::span<const CompletionRequest> requests) const;

  // Requests sent over the network by the last complete_all (retries not counted).
  size_t last_sent() const { return last_sent_; }

 private:
  struct Prepared {
    std::string body, key;
  };
  Prepared prepare(const CompletionRequest& request) const;
  Completion parse(std::string_view body, const CompletionRequest& request) const;
  // Warns once (naming the directory and why) and runs on without the cache.
  void disable_cache(const std::string& why);

  ClientOptions options_;
  std::optional<ResponseCache> cache_;
  size_t last_sent_ = 0;
};

}  // namespace pizza::api
