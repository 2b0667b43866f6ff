// Hugging Face tokenizer.json normalizers (NFC/NFD/NFKC/NFKD through ICU, Lowercase, Prepend,
// Replace, Strip, Sequence) applied to text that remembers, for every byte, which bytes of the
// original input it came from, so that token spans can still be given in original bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace pizza {

// Normalised text plus, per byte, the original byte range it stands for (the role of HF's
// NormalizedString alignments). Inserted bytes (a prepended "▁") get an empty range at the
// place they were inserted; bytes produced from several original characters (NFC composing
// "e" + U+0301) all get the range of the whole group.
struct NormalizedText {
  std::string text;
  std::vector<ByteRange> align;  // align.size() == text.size()
  size_t end = 0;                // original offset just past the text (for insertions at the end)

  // `original` unchanged; its bytes start at offset `base` of the input.
  static NormalizedText identity(std::string_view original, size_t base);
  // The original byte range of normalised bytes [b, e); empty at the right place when b == e.
  ByteRange original(size_t b, size_t e) const;
};

// One normaliser of a tokenizer.json pipeline.
struct NormalizeStep {
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kPrepend, kReplace, kStrip };
  Kind kind = Kind::kNfc;
  std::string text;                       // kPrepend: the prefix; kReplace: the replacement
  std::shared_ptr<const Regex> pattern;   // kReplace: what to replace
  bool left = false, right = false;       // kStrip: which ends lose their whitespace
};

// Applies one step to `t` in place (alignment kept). `scratch` serves kReplace's regex.
void apply_normalize_step(const NormalizeStep& step, NormalizedText& t, RegexScratch& scratch);

// Replaces every match of `pattern` in `s` by `with` (no alignment: decoders).
std::string replace_all(std::string_view s, const Regex& pattern, std::string_view with,
                        RegexScratch& scratch);

}  // namespace pizza
