// From prompt units to perturbed prompts. A unit is a byte span of the prompt (token, word,
// sentence, custom span or regex match, see units/units.h) plus the prompt tokens it covers
// when the backend has a tokenizer; a perturbation replaces a set of units at once.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "perturbation/backend.h"
#include "result/attribution_result.h"
#include "units/units.h"

namespace pizza::perturbation {

// remove is the CLI's "delete". mask keeps every token in place and masks the unit's tokens out
// of attention (positions do not shift); only a local model can run it.
enum class Strategy { remove, fixed, nth_nearest, pad, mask };

struct StrategySpec {
  Strategy kind = Strategy::remove;
  std::string replacement;  // fixed
  int64_t n = 1;            // nth-nearest: 0 = the token itself, -1 = the farthest
};

// "delete", "fixed", "nth-nearest", "pad", "mask"; UsageError otherwise.
Strategy parse_strategy(std::string_view name);
std::string_view strategy_name(Strategy s);

// The perturbable units of a prompt. Special tokens (BOS) are never units: they stay in every
// perturbed prompt, as PIZZA never perturbs them.
struct PromptUnits {
  std::string text;
  std::vector<Token> tokens;     // the prompt's tokens; empty for text-only backends
  std::vector<TokenUnit> units;  // in text order; `tokens` indexes into `tokens`
  // Text around `text` that every prompt carries unchanged (`pizza local --chat`: the chat
  // template before and after the user's message); the tokens that spell it are special, so
  // no unit ever covers them. Empty for a plain prompt.
  std::string prefix, suffix;
};

// Units of `text` by `spec`. With tokens, every unit must cover at least one token start
// (InputError otherwise); without, token units are a UsageError (they need a tokenizer).
PromptUnits make_units(std::string text, std::vector<Token> tokens, const UnitSpec& spec);

// The result's columns for these units.
std::vector<InputUnit> input_units(const PromptUnits& pu);

// Builds perturbed prompts. Replacements are computed once per unit at construction (the
// nth-nearest search is the expensive part).
class Perturber {
 public:
  // tokenizer: the backend's (needed for fixed/pad/nth-nearest at token level); embeddings:
  // for nth-nearest; shared_vocab: the embeddings' ids are the backend's ids. pad_id: the pad
  // (else unk) token for the pad strategy.
  Perturber(const PromptUnits& units, StrategySpec spec, const Tokenizer* tokenizer, const TokenEmbeddings* embeddings,
            bool shared_vocab, std::optional<int32_t> pad_id);

  // The prompt with the given units (indices into units) replaced: prefix + text + suffix.
  Prompt perturb(std::span<const size_t> unit_indices) const;
  // The unperturbed prompt.
  Prompt original() const { return perturb({}); }
  // The removed text of these units, joined with " | " (for the log).
  std::string masked_text(std::span<const size_t> unit_indices) const;
  size_t size() const { return units_.units.size(); }
  const StrategySpec& spec() const { return spec_; }
  const PromptUnits& units() const { return units_; }

 private:
  struct Replacement {
    std::string text;
    std::optional<std::vector<int32_t>> ids;  // token-level replacement, when possible
  };
  Replacement replacement_for(const TokenUnit& unit) const;

  const PromptUnits& units_;
  StrategySpec spec_;
  const Tokenizer* tokenizer_;
  const TokenEmbeddings* embeddings_;
  bool shared_vocab_;
  std::optional<int32_t> pad_id_;
  std::vector<Replacement> replacements_;
  std::vector<int> unit_of_token_;  // token index -> unit index, -1 when in no unit
};

}  // namespace pizza::perturbation
