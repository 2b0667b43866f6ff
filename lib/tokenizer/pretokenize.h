// Pre-tokenization: splitting text into the pieces BPE runs on, with the same regexes the
// reference implementations use, on PCRE2 (UTF + Unicode properties, JIT-compiled), so
// lookaheads such as \s+(?!\S) and classes such as \p{L} behave as in tiktoken / HF.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pizza {

namespace pretokenize_patterns {
// GPT-2 / r50k_base / p50k_base, and HF's ByteLevel pre-tokenizer with use_regex.
inline constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// cl100k_base (also Llama-3's Split regex).
inline constexpr std::string_view kCl100k =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// o200k_base.
inline constexpr std::string_view kO200k =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace pretokenize_patterns

// A byte range [begin, end) of some text.
struct ByteRange {
  size_t begin = 0;
  size_t end = 0;
};

// Per-call matching state (match data, JIT stack), reused across the many split() calls of
// one encode() so that nothing is allocated per piece.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A compiled PCRE2 pattern. Immutable after construction, so one instance may be shared by
// concurrent encode() calls (each call brings its own match data).
class Regex {
 public:
  // `literal`: match `pattern` as a plain string (HF Split with {"String": ...}).
  // Throws InputError quoting `pattern` and `origin` when it does not compile.
  Regex(std::string_view pattern, bool literal, std::string_view origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // HF's "Isolated" split behaviour: every match is a piece, and so is every stretch of text
  // between matches, so the pieces cover `text` exactly. Appends ranges offset by `base`.
  // `text` must be valid UTF-8 (checked once by the caller, not again here).
  void split(std::string_view text, size_t base, std::vector<ByteRange>& out,
             RegexScratch& scratch) const;

  // Every non-empty match, left to right and non-overlapping (HF Replace with a pattern).
  // Appends ranges offset by `base`. `text` must be valid UTF-8.
  void matches(std::string_view text, size_t base, std::vector<ByteRange>& out,
               RegexScratch& scratch) const;

  const std::string& pattern() const { return pattern_; }

 private:
  // Calls f(begin, end) for every non-empty match (the one loop behind split and matches).
  template <class F>
  void each_match(std::string_view text, RegexScratch& scratch, F&& f) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace pizza
