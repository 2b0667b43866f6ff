// The one interface every perturbation backend implements: a local model (lib/engine), an
// OpenAI-compatible HTTP server, or a test fake. No torch here, so the engine and its tests
// build without libtorch.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pizza::perturbation {

// A prompt sent to a backend. `text` is always set. `token_ids` is set when the engine built
// the perturbation at token level (the unperturbed prompt's tokens with some replaced or
// removed, BOS included): a local backend runs exactly those ids instead of re-tokenizing the
// text; a text-only (HTTP) backend ignores them.
struct Prompt {
  std::string text;
  std::optional<std::vector<int32_t>> token_ids;
  // --strategy mask: one flag per token id, false = masked out of attention (the token keeps
  // its position). Only a local backend can honour it; others must refuse such a prompt.
  std::optional<std::vector<bool>> attention_mask;
};

struct TopLogprob {
  std::string token;  // the token's bytes
  int32_t id = -1;    // -1 when the backend gives no ids
  double logprob = 0;
};

struct GeneratedToken {
  std::string token;
  int32_t id = -1;
  double logprob = 0;            // of this token at its position
  std::vector<TopLogprob> top;   // the k most likely tokens at this position, most likely first
};

// A greedy (temperature 0) completion.
struct Generation {
  std::string text;
  std::vector<GeneratedToken> tokens;
};

class PerturbationBackend {
 public:
  virtual ~PerturbationBackend() = default;

  // Free-running: a greedy completion of each prompt with per-token top-k log-probabilities.
  virtual std::vector<Generation> complete(std::span<const Prompt> prompts) = 0;

  // Teacher forcing: whether score() is available (an HTTP server may not echo logprobs).
  virtual bool can_score() const = 0;
  // For each prompt, the exact log-probability of each token of `output` (by id when the
  // backend has ids, else by text) when it follows that prompt: result[p][i].
  virtual std::vector<std::vector<double>> score(std::span<const Prompt> prompts, const Generation& output) = 0;

  // Contrastive teacher forcing (--contrast-text): for each prompt, score()'s log-probabilities
  // of the output tokens and, at the same positions (after the prompt and output[<i]), those of
  // foil[i] in place of output[i]. Only backends with ids and full distributions (a local
  // model) can; the default refuses.
  struct ContrastLogprobs {
    std::vector<double> output, foil;
  };
  virtual std::vector<ContrastLogprobs> score_contrast(std::span<const Prompt> /*prompts*/, const Generation& /*output*/,
                                                       std::span<const int32_t> /*foil*/) {
    throw UsageError("--contrast-text needs a backend that reads any token's log-probability (a local model), not " +
                     describe());
  }

  // For the experiment log, e.g. "local:/models/stories260K".
  virtual std::string describe() const = 0;
};

// A token embedding table: nth-nearest replacements and the cosine metric use it. The local
// backend's model table, or the table of another model (--embeddings MODEL).
class TokenEmbeddings {
 public:
  virtual ~TokenEmbeddings() = default;
  // The tokenizer whose ids index the table.
  virtual const Tokenizer& tokenizer() const = 0;
  // The n-th entry of the ranking of candidate tokens by cosine similarity to `id`, most
  // similar first (n = 0 is the token itself, -1 the least similar). Candidates are the
  // non-special tokens with the same word-boundary marker status ("▁"/"Ġ") as `id`.
  // InputError when |n| exceeds the number of candidates.
  virtual int32_t nth_nearest(int32_t id, int64_t n) const = 0;
  // Cosine similarities of every a[i] with every b[j], row-major a.size() x b.size().
  virtual std::vector<double> cosine(std::span<const int32_t> a, std::span<const int32_t> b) const = 0;
  // The id of the (non-special) token whose bytes are exactly `bytes`, if the vocabulary has
  // one. A remote model's output token arrives as text; looking it up whole avoids re-encoding
  // it, which would add sentencepiece's word-boundary prefix ("." -> "▁", ".").
  virtual std::optional<int32_t> token_with_bytes(std::string_view /*bytes*/) const { return std::nullopt; }
};

}  // namespace pizza::perturbation
