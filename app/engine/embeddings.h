// pizza api --embeddings in the engine: the named model's embedding table (app/embeddings.h).
#pragma once

#include <memory>
#include <string>

#include "app/embeddings.h"
#include "model/model.h"

namespace pizza::app {

class ModelEmbeddings : public EmbeddingLoader {
 public:
  EmbeddingTable load(const std::string& spec, const Tokenizer* units_tokenizer, const perturbation::StrategySpec& strategy,
                      std::span<const perturbation::Metric> metrics) override;

 private:
  // The model stays loaded for a whole batch (records may name another); the tables refer to
  // its tokenizer.
  std::string spec_;
  std::unique_ptr<LanguageModel> lm_;
};

}  // namespace pizza::app
