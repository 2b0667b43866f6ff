// The tokenizer interface every format implements (sentencepiece, byte-level BPE from
// tokenizer.json / vocab.json+merges.txt, tiktoken rank files).
//
// Encoding returns, per token, its id, a display string and the byte span it covers in the
// original text. Spans are contiguous and concatenate back to the input exactly: special
// tokens added by the tokenizer (BOS) have empty spans; when several tokens share bytes
// (byte-fallback pieces of one character) each gets its own byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pizza {

struct Token {
  int32_t id = 0;
  std::string text;   // display string: the token's own piece as its vocabulary spells it
  size_t begin = 0;   // byte span [begin, end) in the original text
  size_t end = 0;
  bool special = false;  // BOS/EOS/added control tokens
};

struct Encoding {
  std::vector<Token> tokens;
  std::vector<int32_t> ids() const;
};

struct EncodeOptions {
  // Add the tokenizer's configured leading special tokens (e.g. BOS when add_bos_token).
  bool add_special_tokens = true;
  // Recognise special-token strings (e.g. "<|endoftext|>") inside the text.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual Encoding encode(std::string_view text, const EncodeOptions& opts = {}) const = 0;
  // Decodes ids to text as Hugging Face's decode does (skip_special_tokens when asked).
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;
  // The raw bytes a single token stands for when it follows other tokens (no leading-space
  // stripping); empty for special/control tokens.
  virtual std::string token_bytes(int32_t id) const = 0;
  // The vocabulary's own spelling of a token (e.g. "▁Once", "Ġworld", "<0x0A>").
  virtual std::string piece(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const { return std::nullopt; }
  virtual std::optional<int32_t> unk_id() const { return std::nullopt; }
  // Short description for logs and JSON output, e.g. "sentencepiece:/path/tokenizer.model".
  virtual std::string describe() const = 0;
};

// Settings from tokenizer_config.json / special_tokens_map.json that apply to any format.
struct TokenizerConfig {
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
};

// Loads tokenizer_config.json (+ special_tokens_map.json) from a model directory when present.
TokenizerConfig load_tokenizer_config(const std::filesystem::path& dir);

// Opens the tokenizer of a model directory, or a tokenizer file given directly: tokenizer.model
// (sentencepiece), tokenizer.json, vocab.json (+ merges.txt beside it), *.tiktoken.
// Throws InputError naming what was looked for when nothing usable is found.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);
// A tiktoken encoding name (e.g. "o200k_base") whose rank file lies in dir, or a file name in dir.
std::unique_ptr<Tokenizer> load_tokenizer(std::string_view name, const std::filesystem::path& dir);

// The text generated after a prompt, as a streaming decoder shows it: decode(prompt + new)
// minus decode(prompt), so a leading space of the first new token is kept (unlike decoding the
// new tokens alone) and multi-token characters decode whole. Special tokens are skipped.
std::string decode_continuation(const Tokenizer& tok, std::span<const int64_t> prompt,
                                std::span<const int64_t> generated);

// Shifts/splits spans so that they are contiguous and cover text exactly (helper for
// implementations): token i starts where token i-1 ended; the last ends at text_size.
void make_spans_contiguous(std::vector<Token>& tokens, size_t text_size);

// The byte a byte-fallback piece "<0xNN>" stands for (hex digits in either case, as HF's
// ByteFallback decoder reads them); nullopt for any other piece.
std::optional<char> byte_fallback_value(std::string_view piece);

}  // namespace pizza
