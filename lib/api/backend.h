// `pizza api`'s perturbation backend: the perturbation engine's completions and teacher-forced
// scores come from an OpenAI-compatible server through ApiClient (cache, retries, concurrency).
// Free-running: greedy (temperature 0, seeded) completions with top-k log-probabilities.
// Teacher-forced: legacy completions with echo, max_tokens 0, logprobs 1 on prompt + original
// output; the output tokens' log-probabilities are read from the echoed tokens by byte offset.
#pragma once

#include "api/client.h"
#include "api/request.h"
#include "perturbation/backend.h"

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace pizza::api {

struct HttpBackendOptions {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  int64_t max_tokens = 32;
  int top_logprobs = 20;
  std::optional<int64_t> seed;
  bool legacy_max_tokens = false;
  std::string extra_body;       // JSON object merged into every body ("" : none)
  bool teacher_forced = false;  // score() available (needs Endpoint::Completions)
  std::optional<std::string> system;  // chat: a system message before the (perturbed) user message
};

// What the server said about itself over a run (for the result's extra_json).
struct ServerInfo {
  std::set<std::string> models, fingerprints;  // served model names, system_fingerprint values
  Usage usage;                                 // totals over every response used (cached included)
  size_t requests = 0;                         // requests made (cached ones included)
  size_t sent = 0;                             // requests sent over the network
};

// The requests complete() / score() send (exposed for --dry-run and tests).
CompletionRequest completion_request(const HttpBackendOptions& o, std::string prompt);
CompletionRequest scoring_request(const HttpBackendOptions& o, std::string prompt, std::string_view output);

// The log-probabilities of the tokens of `output` from the echoed tokens of prompt + output:
// the echoed tokens' bytes must end with prompt + output (a leading special token such as
// "<s>" may precede them); the tokens starting at or after the end of the prompt are the
// output's and must spell `output`'s tokens one for one. ApiError otherwise.
std::vector<double> output_logprobs(std::span<const TokenLogprob> echoed, std::string_view prompt,
                                    const perturbation::Generation& output);

class HttpBackend : public perturbation::PerturbationBackend {
 public:
  HttpBackend(ApiClient& client, HttpBackendOptions options, std::string base_url);

  std::vector<perturbation::Generation> complete(std::span<const perturbation::Prompt> prompts) override;
  bool can_score() const override { return options_.teacher_forced; }
  std::vector<std::vector<double>> score(std::span<const perturbation::Prompt> prompts,
                                         const perturbation::Generation& output) override;
  std::string describe() const override;

  const ServerInfo& info() const { return info_; }

 private:
  std::vector<Completion> send(std::span<const CompletionRequest> requests);

  ApiClient& client_;
  HttpBackendOptions options_;
  std::string base_url_;
  ServerInfo info_;
};

// Converts a parsed completion into the engine's Generation (no token ids: -1).
perturbation::Generation to_generation(const Completion& c);

}  // namespace pizza::api
