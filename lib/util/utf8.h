// UTF-8 as RFC 3629 defines it: one decoder for every place that must tell valid text from
// bytes (the JSON writer's escaping, the table writer's glyphs, prompt validation).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace pizza {

// One decoded code point; len == 0 when the bytes at that position are not valid UTF-8
// (truncated, a stray continuation byte, overlong, a UTF-16 surrogate or beyond U+10FFFF).
struct CodePoint {
  char32_t cp = 0;
  size_t len = 0;
};
CodePoint decode_utf8(std::string_view s, size_t i);

// The byte offset of the first byte that does not start a valid UTF-8 sequence; nullopt when
// all of `s` is valid.
std::optional<size_t> first_invalid_utf8(std::string_view s);

// Throws InputError "<what>: invalid UTF-8 at byte N (0xNN)" unless `s` is valid UTF-8. Text
// that is not UTF-8 would otherwise be tokenized as something else and written back altered.
void require_utf8(std::string_view s, std::string_view what);

// Code points in valid UTF-8 text (the bytes that are not continuation bytes).
size_t utf8_code_points(std::string_view s);

}  // namespace pizza
