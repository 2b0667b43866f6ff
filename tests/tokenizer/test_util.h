// Helpers shared by the tokenizer tests: reading ../shared reference encodings, checking the
// span contract of tokenizer.h, and writing small tokenizer files by hand.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pizza::test {

struct ReferenceLine {
  std::string text;
  std::vector<int32_t> ids;  // empty when the line has no `ids_key`
};

// A reference .jsonl file ({"text": ..., "<ids_key>": [...]} per line); REQUIREs that it has
// at least `min_lines` lines.
std::vector<ReferenceLine> read_reference_jsonl(const std::filesystem::path& file, const char* ids_key,
                                                size_t min_lines = 1);

// True for a byte-fallback piece such as "<0x0A>".
bool is_byte_piece(const Tokenizer& tok, int32_t id);

// Spans start at 0, are contiguous, and concatenate to the text; special tokens are empty
// (unless nothing else is left to cover the text); byte-fallback tokens cover exactly their
// one byte; each token's display text is its piece.
void check_spans(const Tokenizer& tok, const std::string& text);

void write_file(const std::filesystem::path& p, const std::string& s);

// GPT-2's byte alphabet, written out independently of the code under test: printable Latin-1
// bytes keep their code point, the other 68 bytes go to U+0100.. in byte order.
std::string byte_char(unsigned b);

// `s` as a JSON string literal.
std::string json_string(const std::string& s);

}  // namespace pizza::test
