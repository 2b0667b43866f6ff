#include "units/units.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>

#include "util/error.h"
#include "util/split.h"

namespace pizza {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

UnitKind parse_unit_kind(std::string_view name) {
  if (name == "token") return UnitKind::token;
  if (name == "word") return UnitKind::word;
  if (name == "sentence") return UnitKind::sentence;
  throw UsageError("--unit: unknown value '" + std::string(name) + "' (expected token, word or sentence)");
}

std::string_view unit_kind_name(UnitKind kind) {
  switch (kind) {
    case UnitKind::token: return "token";
    case UnitKind::word: return "word";
    case UnitKind::sentence: return "sentence";
    case UnitKind::spans: return "spans";
    case UnitKind::regex: return "regex";
  }
  return "?";
}

std::vector<Span> parse_spans(std::string_view text) {
  std::vector<Span> out;
  for (const auto item : split(text, ',')) {
    auto colon = item.find(':');
    size_t a = 0, b = 0;
    auto bad = [&] { throw UsageError("--spans: '" + std::string(item) + "' is not BEGIN:END (byte offsets)"); };
    if (colon == std::string_view::npos) bad();
    auto ra = std::from_chars(item.data(), item.data() + colon, a);
    auto rb = std::from_chars(item.data() + colon + 1, item.data() + item.size(), b);
    if (ra.ec != std::errc() || ra.ptr != item.data() + colon || rb.ec != std::errc() || rb.ptr != item.data() + item.size())
      bad();
    out.emplace_back(a, b);
  }
  return out;
}

std::vector<Span> word_spans(std::string_view text) {
  std::vector<Span> out;
  size_t start = 0;
  for (size_t i = 1; i < text.size(); ++i) {
    // A new word starts at the first whitespace after non-whitespace.
    if (is_space(text[i]) && !is_space(text[i - 1])) {
      out.emplace_back(start, i);
      start = i;
    }
  }
  if (start < text.size()) out.emplace_back(start, text.size());
  return out;
}

std::vector<Span> sentence_spans(std::string_view text) {
  std::vector<Span> out;
  size_t start = 0, i = 0;
  auto is_end = [](char c) { return c == '.' || c == '!' || c == '?'; };
  auto is_close = [](char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; };
  while (i < text.size()) {
    if (text[i] == '\n' || is_end(text[i])) {
      size_t j = i + 1;
      if (text[i] != '\n') {
        while (j < text.size() && (is_end(text[j]) || is_close(text[j]))) ++j;
        // Only a boundary when whitespace (or the end) follows: "3.14" and "e.g.x" stay whole.
        if (j < text.size() && !is_space(text[j])) {
          i = j;
          continue;
        }
      }
      out.emplace_back(start, j);
      start = j;
      i = j;
      continue;
    }
    ++i;
  }
  if (start < text.size()) out.emplace_back(start, text.size());
  // Whitespace-only pieces join the next sentence (or the previous one at the end).
  std::vector<Span> merged;
  for (size_t k = 0; k < out.size(); ++k) {
    auto s = text.substr(out[k].first, out[k].second - out[k].first);
    bool blank = std::all_of(s.begin(), s.end(), is_space);
    if (blank && k + 1 < out.size()) {
      out[k + 1].first = out[k].first;
    } else if (blank && !merged.empty()) {
      merged.back().second = out[k].second;
    } else {
      merged.push_back(out[k]);
    }
  }
  return merged;
}

std::vector<Span> regex_spans(std::string_view text, const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE erroff = 0;
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> re(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err, &erroff,
                    nullptr),
      pcre2_code_free);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw UsageError("--unit-regex: invalid pattern '" + pattern + "' at offset " + std::to_string(erroff) + ": " +
                     reinterpret_cast<char*>(msg));
  }
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re.get(), nullptr), pcre2_match_data_free);
  std::vector<Span> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(re.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, md.get(), nullptr);
    if (rc < 0) break;
    auto* ov = pcre2_get_ovector_pointer(md.get());
    size_t b = ov[0], e = ov[1];
    if (e > b) out.emplace_back(b, e);
    pos = e > b ? e : e + 1;  // empty matches advance by one byte
  }
  if (out.empty()) throw InputError("--unit-regex '" + pattern + "' matches nothing in the prompt");
  return out;
}

std::vector<Span> unit_spans(std::string_view text, const UnitSpec& spec, const std::vector<Token>* tokens) {
  switch (spec.kind) {
    case UnitKind::token: {
      if (!tokens) throw UsageError("--unit token needs a tokenizer (--tokenizer)");
      std::vector<Span> out;
      for (const auto& t : *tokens)
        if (!t.special) out.emplace_back(t.begin, t.end);
      return out;
    }
    case UnitKind::word: return word_spans(text);
    case UnitKind::sentence: return sentence_spans(text);
    case UnitKind::regex: return regex_spans(text, spec.regex);
    case UnitKind::spans: {
      auto spans = spec.spans;
      if (spans.empty()) throw UsageError("--spans: no spans given");
      for (const auto& [b, e] : spans) {
        if (b >= e || e > text.size())
          throw InputError("--spans: " + std::to_string(b) + ":" + std::to_string(e) + " is empty or outside the prompt (" +
                           std::to_string(text.size()) + " bytes)");
      }
      auto sorted = spans;
      std::sort(sorted.begin(), sorted.end());
      for (size_t i = 1; i < sorted.size(); ++i)
        if (sorted[i].first < sorted[i - 1].second)
          throw InputError("--spans: " + std::to_string(sorted[i - 1].first) + ":" + std::to_string(sorted[i - 1].second) +
                           " and " + std::to_string(sorted[i].first) + ":" + std::to_string(sorted[i].second) + " overlap");
      return spans;
    }
  }
  return {};
}

std::vector<TokenUnit> group_tokens(std::string_view text, const std::vector<Token>& tokens, const UnitSpec& spec) {
  std::vector<TokenUnit> units;
  if (spec.kind == UnitKind::token) {
    for (size_t i = 0; i < tokens.size(); ++i) units.push_back({{tokens[i].begin, tokens[i].end}, {i}, tokens[i].special});
    return units;
  }
  auto spans = unit_spans(text, spec, &tokens);
  // Units in text order; specials are placed where they occur.
  std::vector<TokenUnit> span_units;
  for (const auto& s : spans) span_units.push_back({s, {}, false});
  std::vector<std::pair<size_t, TokenUnit>> specials;  // (insert-before index, unit)
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto& t = tokens[i];
    if (t.special || t.begin == t.end) {
      size_t before = 0;
      while (before < span_units.size() && span_units[before].span.first < t.begin) ++before;
      specials.push_back({before, {{t.begin, t.end}, {i}, true}});
      continue;
    }
    for (auto& u : span_units) {
      if (t.begin >= u.span.first && t.begin < u.span.second) {
        u.tokens.push_back(i);
        break;
      }
    }
  }
  size_t next_special = 0;
  for (size_t k = 0; k <= span_units.size(); ++k) {
    while (next_special < specials.size() && specials[next_special].first == k) units.push_back(specials[next_special++].second);
    if (k < span_units.size()) units.push_back(span_units[k]);
  }
  return units;
}

Aggregate parse_aggregate(std::string_view name) {
  if (name == "sum") return Aggregate::sum;
  if (name == "mean") return Aggregate::mean;
  if (name == "max") return Aggregate::max;
  if (name == "absmax") return Aggregate::absmax;
  throw UsageError("--aggregate: unknown value '" + std::string(name) + "' (expected sum, mean, max or absmax)");
}

double aggregate(const std::vector<double>& row, const std::vector<size_t>& members, Aggregate how) {
  if (members.empty()) return 0.0;
  double acc = how == Aggregate::sum || how == Aggregate::mean ? 0.0 : row[members[0]];
  for (size_t m : members) {
    double v = row[m];
    switch (how) {
      case Aggregate::sum:
      case Aggregate::mean: acc += v; break;
      case Aggregate::max: acc = std::max(acc, v); break;
      case Aggregate::absmax: acc = std::fabs(v) > std::fabs(acc) ? v : acc; break;
    }
  }
  return how == Aggregate::mean ? acc / static_cast<double>(members.size()) : acc;
}

}  // namespace pizza
