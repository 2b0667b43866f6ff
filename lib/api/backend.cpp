#include "api/backend.h"

#include <cmath>
#include <utility>

namespace pizza::api {

using perturbation::Generation;
using perturbation::Prompt;

CompletionRequest completion_request(const HttpBackendOptions& o, std::string prompt) {
  CompletionRequest r;
  r.endpoint = o.endpoint;
  r.model = o.model;
  r.prompt = std::move(prompt);
  r.system = o.system;
  r.max_tokens = o.max_tokens;
  r.legacy_max_tokens = o.legacy_max_tokens;
  r.temperature = 0.0;  // greedy: the explained output must be reproducible
  r.seed = o.seed;
  r.logprobs = true;
  r.top_logprobs = o.top_logprobs;
  r.extra_body = o.extra_body;
  return r;
}

CompletionRequest scoring_request(const HttpBackendOptions& o, std::string prompt, std::string_view output) {
  auto r = completion_request(o, std::move(prompt));
  r.endpoint = Endpoint::Completions;  // only legacy completions echo the prompt's log-probs
  r.prompt += output;
  r.max_tokens = 0;
  r.top_logprobs = 1;
  r.echo = true;
  return r;
}

std::vector<double> output_logprobs(std::span<const TokenLogprob> echoed, std::string_view prompt, const Generation& output) {
  std::string all;
  for (const auto& t : echoed) all += t.token;
  const size_t full = prompt.size() + output.text.size();
  if (all.size() < full || all.compare(all.size() - full, prompt.size(), prompt) != 0 ||
      all.compare(all.size() - output.text.size(), output.text.size(), output.text) != 0)
    throw ApiError("teacher-forced scoring: the server's echoed tokens do not spell the prompt and output (" +
                   std::to_string(echoed.size()) + " tokens echoed); the server does not echo the prompt, use --scoring free-running");
  // Byte offsets in `all`: the output starts where the prompt ends.
  const size_t boundary = all.size() - output.text.size();
  std::vector<double> lps;
  std::string spelled;
  size_t pos = 0;
  for (const auto& t : echoed) {
    const size_t begin = pos;
    pos += t.token.size();
    if (t.token.empty() || pos <= boundary) continue;
    if (begin < boundary)
      throw ApiError("teacher-forced scoring: the server's token '" + t.token +
                     "' spans the end of the prompt and the start of the output; use --scoring free-running");
    if (std::isnan(t.logprob))
      throw ApiError("teacher-forced scoring: the server returned no log-probability for output token '" + t.token + "'");
    lps.push_back(t.logprob);
    spelled += t.token;
  }
  if (lps.size() != output.tokens.size())
    throw ApiError("teacher-forced scoring: the server tokenizes the output into " + std::to_string(lps.size()) +
                   " tokens after the prompt, not the " + std::to_string(output.tokens.size()) +
                   " it generated; use --scoring free-running");
  size_t at = 0;
  for (const auto& t : output.tokens) {
    if (spelled.compare(at, t.token.size(), t.token) != 0)
      throw ApiError("teacher-forced scoring: the server re-tokenizes the output differently from how it generated it; "
                     "use --scoring free-running");
    at += t.token.size();
  }
  return lps;
}

Generation to_generation(const Completion& c) {
  Generation g;
  g.text = c.text;
  for (const auto& t : c.tokens) {
    perturbation::GeneratedToken gt{t.token, -1, t.logprob, {}};
    for (const auto& alt : t.top) gt.top.push_back({alt.token, -1, alt.logprob});
    g.tokens.push_back(std::move(gt));
  }
  return g;
}

HttpBackend::HttpBackend(ApiClient& client, HttpBackendOptions options, std::string base_url)
    : client_(client), options_(std::move(options)), base_url_(std::move(base_url)) {}

std::vector<Completion> HttpBackend::send(std::span<const CompletionRequest> requests) {
  auto out = client_.complete_all(requests);
  info_.requests += requests.size();
  info_.sent += client_.last_sent();
  for (const auto& c : out) {
    if (!c.model.empty()) info_.models.insert(c.model);
    if (!c.system_fingerprint.empty()) info_.fingerprints.insert(c.system_fingerprint);
    info_.usage.prompt += c.usage.prompt;
    info_.usage.completion += c.usage.completion;
  }
  return out;
}

namespace {
// A server sees text only: it cannot mask tokens out of attention.
void refuse_masks(std::span<const Prompt> prompts) {
  for (const auto& p : prompts)
    if (p.attention_mask) throw UsageError("--strategy mask works on a local model only (a server sees text, not attention)");
}
}  // namespace

std::vector<Generation> HttpBackend::complete(std::span<const Prompt> prompts) {
  refuse_masks(prompts);
  std::vector<CompletionRequest> requests;
  for (const auto& p : prompts) requests.push_back(completion_request(options_, p.text));
  std::vector<Generation> out;
  for (const auto& c : send(requests)) {
    // A server that ignores `logprobs` leaves the free-running metrics nothing to compare.
    if (c.tokens.empty() && !c.text.empty())
      throw ApiError("the server at " + base_url_ + " returned no log-probabilities for model '" + options_.model +
                     "'; it must support logprobs/top_logprobs");
    out.push_back(to_generation(c));
  }
  return out;
}

std::vector<std::vector<double>> HttpBackend::score(std::span<const Prompt> prompts, const Generation& output) {
  if (!options_.teacher_forced) throw UsageError("teacher-forced scoring needs --scoring teacher-forced");
  refuse_masks(prompts);
  std::vector<CompletionRequest> requests;
  for (const auto& p : prompts) requests.push_back(scoring_request(options_, p.text, output.text));
  const auto completions = send(requests);
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < completions.size(); ++i) {
    std::vector<TokenLogprob> echoed = completions[i].prompt_tokens;
    echoed.insert(echoed.end(), completions[i].tokens.begin(), completions[i].tokens.end());
    out.push_back(output_logprobs(echoed, prompts[i].text, output));
  }
  return out;
}

std::string HttpBackend::describe() const { return "api:" + base_url_ + " model " + options_.model; }

}  // namespace pizza::api
