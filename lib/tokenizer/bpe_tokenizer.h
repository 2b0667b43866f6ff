// The Tokenizer built by every byte-level BPE loader (tokenizer.json, vocab.json+merges.txt,
// tiktoken): added/special tokens split out first, then the pre-tokenizer pipeline, then BPE.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/bpe_model.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace pizza {

// A token matched verbatim in the text before pre-tokenization (HF "added_tokens", tiktoken
// special tokens). Special ones are only matched when EncodeOptions::parse_special is set;
// the others always are, as Hugging Face does.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = true;
};

// One step of the pre-tokenizer pipeline, applied to every piece the previous steps produced.
struct PreTokenizeStep {
  enum class Kind {
    kSplit,        // split each piece with `regex` (HF Split, behaviour "Isolated")
    kPrefixSpace,  // HF ByteLevel add_prefix_space: a piece not starting with ' ' gets one
  };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;
};

// HF's Metaspace pre-tokenizer (sentencepiece-style tokenizer.json): spaces become
// `replacement`, which is also put in front of the text (unless it already starts with one;
// "first": only for the text at offset 0, not after an added token), then optionally the text
// is cut before every `replacement`.
struct MetaspaceSpec {
  enum class Prepend { kAlways, kFirst, kNever };
  std::string replacement = "\xE2\x96\x81";  // U+2581
  Prepend prepend = Prepend::kAlways;
  bool split = true;
  std::shared_ptr<const Regex> space;  // the literal " "
};

// One step of a tokenizer.json decoder chain, applied to the list of token strings as HF's
// decode_chain does (used by tokenizers that are not byte-level).
struct DecodeStep {
  enum class Kind {
    kReplace,       // every match of `pattern` in each token becomes `text`
    kByteFallback,  // runs of <0xNN> tokens become their bytes (U+FFFD each when invalid UTF-8)
    kFuse,          // all tokens joined into one
    kStrip,         // up to `start` / `stop` copies of the character `text` cut from each token
    kMetaspace,     // `text` (the replacement) becomes ' '; dropped in the first token if `prepend`
  };
  Kind kind = Kind::kFuse;
  std::shared_ptr<const Regex> pattern;
  std::string text;
  size_t start = 0, stop = 0;
  bool prepend = true;
};

struct BpeSpec {
  std::unique_ptr<BpeModel> model;
  std::vector<NormalizeStep> normalizer;  // applied to each stretch between added tokens
  std::optional<MetaspaceSpec> metaspace;  // runs before `steps`
  std::vector<PreTokenizeStep> steps;
  // Set for tokenizers whose vocabulary is not byte-level (pieces decode through this chain);
  // unset: a token's bytes are the byte-level decoding of its piece.
  std::optional<std::vector<DecodeStep>> decoder;
  std::vector<AddedToken> added;
  std::vector<int32_t> prefix_ids;  // added before the text when add_special_tokens (BOS)
  std::vector<int32_t> suffix_ids;  // added after it (EOS when a template asks for it)
  std::optional<int32_t> bos, eos, pad, unk;
  std::string description;
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);

  Encoding encode(std::string_view text, const EncodeOptions& opts = {}) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const override;
  std::string token_bytes(int32_t id) const override;
  std::string piece(int32_t id) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override;
  std::optional<int32_t> bos_id() const override { return spec_.bos; }
  std::optional<int32_t> eos_id() const override { return spec_.eos; }
  std::optional<int32_t> pad_id() const override { return spec_.pad; }
  std::optional<int32_t> unk_id() const override { return spec_.unk; }
  std::string describe() const override { return spec_.description; }

 private:
  const AddedToken* added(int32_t id) const;
  struct Piece;
  // Encodes text[begin, end) (no added tokens inside) and appends its tokens.
  void encode_ordinary(std::string_view text, size_t begin, size_t end, RegexScratch& scratch,
                       std::vector<Token>& tokens) const;
  // Pre-tokenizer steps and BPE over `pieces` of `text`; token spans are mapped through `nt`
  // (when the text was normalised) back to the original input.
  void encode_pieces(std::string_view text, std::vector<Piece> pieces, const NormalizedText* nt,
                     RegexScratch& scratch, std::vector<Token>& tokens) const;
  // Metaspace's rewrite of `nt`; returns the pieces it cuts it into.
  std::vector<Piece> apply_metaspace(NormalizedText& nt, bool at_start, RegexScratch& scratch) const;
  std::string decode_chain(std::vector<std::string> tokens) const;
  Token control_token(int32_t id, size_t at) const;

  BpeSpec spec_;
  bool normalizes_ = false;  // a normaliser or Metaspace may change the text
  int32_t vocab_size_ = 0;
  std::vector<int32_t> added_index_;  // id -> index into spec_.added, -1 for model tokens
  // Added tokens by first byte, longest first: the leftmost-longest match wins, as in HF.
  std::vector<std::vector<size_t>> added_by_first_byte_;
};

}  // namespace pizza
