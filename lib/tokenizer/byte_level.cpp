#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>

namespace pizza::byte_level {
namespace {

// Bytes GPT-2 keeps as their own Latin-1 code point; the other 68 bytes are moved, in byte
// order, to U+0100.. so none of them is whitespace or a control character.
constexpr bool keeps_own_code_point(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<int16_t, 256 + 68> cp_to_byte{};  // -1: not a byte character
};

constexpr Tables make_tables() {
  Tables t;
  for (auto& v : t.cp_to_byte) v = -1;
  unsigned moved = 0;
  for (unsigned b = 0; b < 256; ++b) {
    char32_t cp = keeps_own_code_point(b) ? b : 256 + moved++;
    t.byte_to_cp[b] = cp;
    t.cp_to_byte[cp] = static_cast<int16_t>(b);
  }
  return t;
}

constexpr Tables kTables = make_tables();

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the valid UTF-8 sequence at text[i] (0 if invalid) and, through `maximal`, the
// length of the maximal prefix of a valid sequence there (at least 1) for lossy replacement.
size_t utf8_sequence(std::string_view text, size_t i, size_t* maximal) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (maximal) *maximal = 1;
  if (lead < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;  // no overlongs
    if (lead == 0xED) hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= text.size()) return 0;
    unsigned char c = byte(i + k);
    bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return 0;
    if (maximal) *maximal = k + 1;
  }
  return need;
}

}  // namespace

std::string bytes_to_piece(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, kTables.byte_to_cp[static_cast<unsigned char>(c)]);
  return out;
}

std::optional<std::string> piece_to_bytes(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    size_t len = utf8_sequence(piece, i, nullptr);
    if (len == 0 || len > 2) return std::nullopt;  // byte characters are all below U+0800
    char32_t cp = static_cast<unsigned char>(piece[i]);
    if (len == 2) cp = ((cp & 0x1F) << 6) | (static_cast<unsigned char>(piece[i + 1]) & 0x3F);
    if (cp >= kTables.cp_to_byte.size() || kTables.cp_to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(kTables.cp_to_byte[cp]);
    i += len;
  }
  return out;
}

size_t invalid_utf8_offset(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    // ASCII fast path: most text is plain ASCII.
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_sequence(text, i, nullptr);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t maximal = 1;
    size_t len = utf8_sequence(bytes, i, &maximal);
    if (len > 0) {
      out.append(bytes.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal;
    }
  }
  return out;
}

}  // namespace pizza::byte_level
