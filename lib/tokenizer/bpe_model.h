// The byte-level BPE core shared by the tokenizer.json, vocab.json+merges.txt and tiktoken
// loaders: a vocabulary of byte strings and a table of mergeable adjacent pairs.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pizza {

// Heterogeneous string hashing so lookups by string_view allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A token produced by BPE and how many bytes of the encoded piece it covers.
struct BpeSymbol {
  int32_t id = 0;
  uint32_t len = 0;
};

// Character-level BPE (sentencepiece-style tokenizer.json): the initial symbols are the
// piece's characters looked up in the vocabulary; a character that is not a token becomes the
// <0xNN> tokens of its UTF-8 bytes (byte_fallback) or `unk` (one per run when fuse_unk).
struct CharLevelOptions {
  bool byte_fallback = false;
  std::optional<int32_t> unk;
  bool fuse_unk = false;
};

// The largest token id a tokenizer file holding `tokens` tokens may use. Ids size tables (a
// slot per id up to the largest), and real vocabularies are dense with small gaps (tiktoken's
// special tokens sit a few ids past its ranks), so an id far beyond the count is a corrupt or
// hostile file, refused before it sizes anything.
constexpr int64_t max_token_id(size_t tokens) { return 2 * static_cast<int64_t>(tokens) + 1024; }

// The longest token a tokenizer file may define, in bytes. Loading does work per token that
// grows with the square of its length (tiktoken's merge table is derived from every split point
// of every token; an added token is compared at every position of the text that starts like
// it), so one 400 KB token took 15 s. Real vocabularies' longest tokens are a few hundred bytes
// (128 in cl100k_base and o200k_base, 128 bytes / 256 characters in GPT-2's), far below this.
inline constexpr size_t kMaxTokenBytes = 4096;

class BpeModel {
 public:
  // Sizes the tables for about `tokens` tokens up front (large vocabularies load faster).
  void reserve(size_t tokens);
  // Registers token `id` standing for raw `bytes`, spelled `piece` in the vocabulary.
  // Ids may leave holes (tiktoken's gap below its special tokens); holes have no bytes.
  void add_token(int32_t id, std::string bytes, std::string piece);
  // Declares that adjacent tokens (left, right) merge into `merged`; lower rank merges first.
  // A pair given twice keeps its last rank, as Hugging Face's loader does.
  void add_merge(int32_t left, int32_t right, int32_t rank, int32_t merged);
  // tiktoken has no merge list: any adjacent pair whose concatenation is a token merges, with
  // that token's rank. Derives the pair table from every split point of every token.
  void derive_merges_from_ranks();
  // Switches from byte-level (every byte a token) to character-level initial symbols.
  void set_char_level(CharLevelOptions opts) { char_level_ = opts; }
  // Whether <0xNN> tokens stand for single bytes (character-level with byte fallback).
  bool byte_fallback() const { return char_level_ && char_level_->byte_fallback; }
  // Call once all tokens are in: checks that each of the 256 bytes is a token (byte-level) or
  // that every <0xNN> token exists (character-level with byte fallback), so any text can be
  // encoded. Throws InputError mentioning `origin` otherwise.
  void finish(std::string_view origin);

  // Llama-3 and tiktoken look a whole pre-tokenized piece up first and only run the merges
  // when it is not a token itself.
  void set_ignore_merges(bool v) { ignore_merges_ = v; }

  // BPE-encodes one pre-tokenized piece (raw bytes, or valid UTF-8 text when character-level),
  // appending its tokens to `out`.
  void encode_piece(std::string_view bytes, std::vector<BpeSymbol>& out) const;

  std::optional<int32_t> find(std::string_view bytes) const;
  std::optional<int32_t> find_piece(std::string_view piece) const;
  bool has(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < present_.size() && present_[id];
  }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  // One past the largest id.
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // The symbols BPE starts from: one per byte, or per character when character-level.
  void initial_symbols(std::string_view bytes, std::vector<BpeSymbol>& out) const;
  void merge(std::string_view bytes, std::vector<BpeSymbol>& out) const;

  std::vector<std::string> bytes_;
  std::vector<std::string> pieces_;
  std::vector<char> present_;
  StringIdMap by_bytes_;
  StringIdMap by_piece_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  bool ignore_merges_ = false;
  std::optional<CharLevelOptions> char_level_;
  std::string origin_;

  // Memo of encoded pieces: natural text repeats the same words over and over. Bounded, and
  // guarded so that concurrent encode() calls on one tokenizer stay safe.
  static constexpr size_t kCacheMaxEntries = 1 << 16;
  static constexpr size_t kCacheMaxPieceBytes = 64;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<BpeSymbol>, StringHash, std::equal_to<>> cache_;
};

}  // namespace pizza
