#include "app/engine/embeddings.h"

#include "app/engine/model_options.h"
#include "engine/local_perturbation.h"

namespace pizza::app {

EmbeddingTable ModelEmbeddings::load(const std::string& spec, const Tokenizer* units_tokenizer,
                                     const perturbation::StrategySpec& strategy, std::span<const perturbation::Metric> metrics) {
  if (!lm_ || spec != spec_) {
    ModelOptions mo;
    mo.model = spec;
    lm_ = load_model(mo);
    spec_ = spec;
  }
  EmbeddingChoice choice = choose_embeddings(*lm_, units_tokenizer, strategy, metrics);
  return {std::move(choice.table), choice.shared_vocab};
}

}  // namespace pizza::app
