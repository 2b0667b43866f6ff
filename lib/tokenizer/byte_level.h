// GPT-2's byte <-> printable-character mapping used by every byte-level BPE vocabulary
// (GPT-2, Llama-3, Qwen2, ...), plus the UTF-8 helpers the BPE tokenizers need.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::byte_level {

// The vocabulary spelling of raw bytes: each byte becomes one printable code point
// (e.g. ' ' -> "Ġ", '\n' -> "Ċ"), so every token is a visible string.
std::string bytes_to_piece(std::string_view bytes);

// The inverse; nullopt when a character of `piece` is not one of the 256 byte characters
// (e.g. an added token such as "<|im_start|>" is fine, "▁x" is not).
std::optional<std::string> piece_to_bytes(std::string_view piece);

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos when all of
// `text` is valid UTF-8 (overlongs, surrogates and code points above U+10FFFF are invalid).
size_t invalid_utf8_offset(std::string_view text);

// Bytes to text as Rust's String::from_utf8_lossy (and so Hugging Face decode) does: every
// maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace pizza::byte_level
