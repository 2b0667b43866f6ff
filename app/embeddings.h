// pizza api --embeddings MODEL: a local model's embedding table, which ranks nth-nearest
// replacements and compares outputs for the cosine metric. Loading a model needs the engine
// (libtorch), so the front end has no loader and hands such runs to the engine.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "perturbation/engine.h"
#include "perturbation/perturb.h"
#include "tokenizer/tokenizer.h"

namespace pizza::app {

struct EmbeddingTable {
  // nullptr when neither the strategy nor a metric needs one.
  std::shared_ptr<const perturbation::TokenEmbeddings> table;
  bool shared_vocab = false;  // the units' tokenizer numbers tokens as the table does
};

class EmbeddingLoader {
 public:
  virtual ~EmbeddingLoader() = default;
  // The table of the model `spec` (a directory or hub repo id) for this strategy and these
  // metrics; the model stays loaded for the next call with the same spec (a batch's records).
  virtual EmbeddingTable load(const std::string& spec, const Tokenizer* units_tokenizer,
                              const perturbation::StrategySpec& strategy, std::span<const perturbation::Metric> metrics) = 0;
};

}  // namespace pizza::app
