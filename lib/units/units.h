// Input units: the columns of an attribution matrix, all defined by byte spans of the
// original text. Tokens come from the model's tokenizer; words, sentences, custom spans and
// regex matches group tokens (or, for black-box engines, need no tokenizer at all).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pizza {

enum class UnitKind { token, word, sentence, spans, regex };

struct UnitSpec {
  UnitKind kind = UnitKind::token;
  std::vector<std::pair<size_t, size_t>> spans;  // kind == spans: [begin, end) byte ranges
  std::string regex;                              // kind == regex: each match is a unit
};

// "token", "word", "sentence"; UsageError otherwise.
UnitKind parse_unit_kind(std::string_view name);
std::string_view unit_kind_name(UnitKind kind);

// Parses "a:b,c:d" into spans; UsageError on bad syntax.
std::vector<std::pair<size_t, size_t>> parse_spans(std::string_view text);

using Span = std::pair<size_t, size_t>;

// Whitespace-delimited words as PIZZA splits them: each word owns the whitespace before it
// ("Once upon" -> "Once", " upon"). Spans are contiguous and cover the text.
std::vector<Span> word_spans(std::string_view text);
// Sentences: split after '.', '!', '?' (and runs of them, plus closing quotes/brackets) or at
// newlines; the whitespace that follows belongs to the next sentence. Covers the text.
std::vector<Span> sentence_spans(std::string_view text);
// Each match of a PCRE2 regex (UTF mode) is a span; InputError when it matches nothing.
std::vector<Span> regex_spans(std::string_view text, const std::string& pattern);

// The unit spans for a spec (token kind needs tokens; others work from the text alone).
// Custom spans are validated: inside the text, non-empty, non-overlapping (InputError).
std::vector<Span> unit_spans(std::string_view text, const UnitSpec& spec, const std::vector<Token>* tokens = nullptr);

// A unit with the tokens it covers. Special tokens (BOS, empty span) are units of their own.
struct TokenUnit {
  Span span;
  std::vector<size_t> tokens;  // indices into the token list
  bool special = false;
};

// Groups tokens into units: a token belongs to the unit containing its first byte. Tokens of
// custom/regex specs that fall outside every span are dropped (not attributed).
std::vector<TokenUnit> group_tokens(std::string_view text, const std::vector<Token>& tokens, const UnitSpec& spec);

enum class Aggregate { sum, mean, max, absmax };
Aggregate parse_aggregate(std::string_view name);

// Reduces values of the given member indices to one number.
double aggregate(const std::vector<double>& row, const std::vector<size_t>& members, Aggregate how);

}  // namespace pizza
