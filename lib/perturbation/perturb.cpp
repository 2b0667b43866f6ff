#include "perturbation/perturb.h"

#include <algorithm>

#include "util/error.h"

namespace pizza::perturbation {

Strategy parse_strategy(std::string_view name) {
  if (name == "delete") return Strategy::remove;
  if (name == "fixed") return Strategy::fixed;
  if (name == "nth-nearest") return Strategy::nth_nearest;
  if (name == "pad") return Strategy::pad;
  if (name == "mask") return Strategy::mask;
  throw UsageError("--strategy: unknown value '" + std::string(name) + "' (expected delete, fixed, nth-nearest, pad or mask)");
}

std::string_view strategy_name(Strategy s) {
  switch (s) {
    case Strategy::remove: return "delete";
    case Strategy::fixed: return "fixed";
    case Strategy::nth_nearest: return "nth-nearest";
    case Strategy::pad: return "pad";
    case Strategy::mask: return "mask";
  }
  return "?";
}

PromptUnits make_units(std::string text, std::vector<Token> tokens, const UnitSpec& spec) {
  PromptUnits pu;
  pu.text = std::move(text);
  pu.tokens = std::move(tokens);
  if (pu.tokens.empty()) {
    for (const auto& s : unit_spans(pu.text, spec, nullptr)) pu.units.push_back({s, {}, false});
  } else {
    for (auto& u : group_tokens(pu.text, pu.tokens, spec)) {
      if (u.special) continue;
      if (u.tokens.empty())
        throw InputError("unit " + std::to_string(u.span.first) + ":" + std::to_string(u.span.second) +
                         " contains the start of no token of the prompt; align custom spans with tokens");
      pu.units.push_back(std::move(u));
    }
  }
  if (pu.units.empty()) throw InputError("the prompt has no units to perturb");
  return pu;
}

std::vector<InputUnit> input_units(const PromptUnits& pu) {
  std::vector<InputUnit> out;
  for (const auto& u : pu.units) {
    InputUnit iu;
    iu.begin = u.span.first;
    iu.end = u.span.second;
    iu.text = pu.text.substr(u.span.first, u.span.second - u.span.first);
    for (auto t : u.tokens) iu.token_ids.push_back(pu.tokens[t].id);
    out.push_back(std::move(iu));
  }
  return out;
}

Perturber::Perturber(const PromptUnits& units, StrategySpec spec, const Tokenizer* tokenizer,
                     const TokenEmbeddings* embeddings, bool shared_vocab, std::optional<int32_t> pad_id)
    : units_(units), spec_(std::move(spec)), tokenizer_(tokenizer), embeddings_(embeddings),
      shared_vocab_(shared_vocab), pad_id_(pad_id), unit_of_token_(units.tokens.size(), -1) {
  for (size_t u = 0; u < units_.units.size(); ++u)
    for (auto t : units_.units[u].tokens) unit_of_token_[t] = static_cast<int>(u);
  for (const auto& u : units_.units) replacements_.push_back(replacement_for(u));
}

Perturber::Replacement Perturber::replacement_for(const TokenUnit& unit) const {
  const bool has_tokens = !units_.tokens.empty();
  const bool token_level = has_tokens && tokenizer_ != nullptr;
  Replacement r;
  switch (spec_.kind) {
    case Strategy::remove:
      if (has_tokens) r.ids.emplace();
      return r;
    case Strategy::mask:
      // The text (for logs) reads as deleted; the ids stay and perturb() masks them.
      if (!has_tokens) throw UsageError("--strategy mask needs the model's tokens: it works on a local model only");
      r.ids.emplace();
      return r;
    case Strategy::fixed:
      r.text = spec_.replacement;
      if (token_level) {
        EncodeOptions eo;
        eo.add_special_tokens = false;
        r.ids = tokenizer_->encode(spec_.replacement, eo).ids();
      }
      return r;
    case Strategy::pad: {
      if (!token_level || !pad_id_)
        throw InputError("--strategy pad needs the model's tokenizer with a pad or unk token");
      r.ids = std::vector<int32_t>(unit.tokens.size(), *pad_id_);
      for (size_t i = 0; i < unit.tokens.size(); ++i) r.text += tokenizer_->piece(*pad_id_);
      return r;
    }
    case Strategy::nth_nearest: {
      if (!embeddings_) throw InputError("--strategy nth-nearest needs a token embedding table");
      const auto& et = embeddings_->tokenizer();
      std::vector<int32_t> source;
      if (has_tokens && shared_vocab_) {
        for (auto t : unit.tokens) source.push_back(units_.tokens[t].id);
      } else {
        // Text-level: the unit's text in the embedding model's own vocabulary.
        EncodeOptions eo;
        eo.add_special_tokens = false;
        source = et.encode(std::string_view(units_.text).substr(unit.span.first, unit.span.second - unit.span.first), eo).ids();
      }
      std::vector<int32_t> ids;
      for (auto id : source) {
        ids.push_back(embeddings_->nth_nearest(id, spec_.n));
        r.text += et.token_bytes(ids.back());
      }
      if (has_tokens && shared_vocab_) r.ids = std::move(ids);
      return r;
    }
  }
  return r;
}

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
}  // namespace

Prompt Perturber::perturb(std::span<const size_t> unit_indices) const {
  std::vector<bool> selected(units_.units.size(), false);
  for (auto u : unit_indices) selected.at(u) = true;

  // Text: units are disjoint byte spans; replace the selected ones in text order.
  std::vector<size_t> order(unit_indices.begin(), unit_indices.end());
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return units_.units[a].span < units_.units[b].span; });
  //
  // A deleted unit takes only its own bytes, and the text around the cut must not gain
  // whitespace the unit did not own: deleting the first word of "Once upon" must give "upon",
  // not " upon" (a server that tokenizes text, such as llama.cpp's, would read an extra "▁"
  // token that token-level deletion never has), and deleting "upon" from "Once upon a" as a
  // regex unit must not leave two spaces. So at each deletion the whitespace that then starts
  // the text, doubles the whitespace before the cut, or ends the text is dropped.
  Prompt p;
  p.text = units_.prefix;
  const size_t text_start = p.text.size();  // where the units' text starts in p.text
  size_t cursor = 0;
  bool all_ids = !units_.tokens.empty();
  bool after_deletion = false;  // the next original bytes follow a deleted unit
  auto append_original = [&](size_t from, size_t to) {
    if (after_deletion && from < to) {
      const bool left_space = p.text.size() == text_start || is_space(p.text.back());
      if (left_space)
        while (from < to && is_space(units_.text[from])) ++from;
      if (from < to) after_deletion = false;
    }
    p.text.append(units_.text, from, to - from);
  };
  for (auto u : order) {
    const auto& span = units_.units[u].span;
    append_original(cursor, span.first);
    const auto& rep = replacements_[u].text;
    if (rep.empty()) {
      after_deletion = true;
    } else {
      p.text += rep;
      after_deletion = false;
    }
    cursor = span.second;
    all_ids = all_ids && replacements_[u].ids.has_value();
  }
  append_original(cursor, units_.text.size());
  if (after_deletion)  // the text ended in deleted units: no trailing whitespace they left
    while (p.text.size() > text_start && is_space(p.text.back())) p.text.pop_back();
  p.text += units_.suffix;

  if (spec_.kind == Strategy::mask) {
    std::vector<int32_t> ids;
    std::vector<bool> keep;
    for (size_t t = 0; t < units_.tokens.size(); ++t) {
      const int u = unit_of_token_[t];
      ids.push_back(units_.tokens[t].id);
      keep.push_back(u < 0 || !selected[static_cast<size_t>(u)]);
    }
    p.token_ids = std::move(ids);
    p.attention_mask = std::move(keep);
    return p;
  }

  // Ids: the prompt's tokens with each selected unit's tokens swapped for its replacement
  // (units' tokens are contiguous: a token belongs to the unit holding its first byte).
  if (all_ids) {
    std::vector<int32_t> ids;
    for (size_t t = 0; t < units_.tokens.size(); ++t) {
      const int u = unit_of_token_[t];
      if (u < 0 || !selected[static_cast<size_t>(u)]) {
        ids.push_back(units_.tokens[t].id);
      } else if (units_.units[static_cast<size_t>(u)].tokens.front() == t) {
        const auto& rep = *replacements_[static_cast<size_t>(u)].ids;
        ids.insert(ids.end(), rep.begin(), rep.end());
      }
    }
    p.token_ids = std::move(ids);
  }
  return p;
}

std::string Perturber::masked_text(std::span<const size_t> unit_indices) const {
  std::vector<size_t> order(unit_indices.begin(), unit_indices.end());
  std::sort(order.begin(), order.end());
  std::string out;
  for (auto u : order) {
    if (!out.empty()) out += " | ";
    const auto& s = units_.units[u].span;
    out.append(units_.text, s.first, s.second - s.first);
  }
  return out;
}

}  // namespace pizza::perturbation
