#include "report/text.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace pizza::report::detail {

namespace {

struct Range {
  char32_t lo, hi;
};

bool in(char32_t cp, std::initializer_list<Range> ranges) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [cp](Range r) { return cp >= r.lo && cp <= r.hi; });
}

// Characters a terminal shows as nothing or that reorder text: shown escaped instead.
bool invisible_format(char32_t cp) {
  return in(cp, {{0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2069}, {0xFEFF, 0xFEFF}});
}

std::string hex_escape(const char* prefix, unsigned value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s%0*X", prefix, digits, value);
  return buf;
}

Glyph escaped(std::string text) {
  size_t w = text.size();  // escapes are ASCII
  return {std::move(text), w};
}

}  // namespace

int codepoint_width(char32_t cp) {
  if (in(cp, {{0x0300, 0x036F}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x20D0, 0x20FF},
              {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}}))
    return 0;
  if (in(cp, {{0x1100, 0x115F}, {0x2E80, 0x303E}, {0x3041, 0x33FF}, {0x3400, 0x4DBF},
              {0x4E00, 0x9FFF}, {0xA000, 0xA4CF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
              {0xFE30, 0xFE4F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6}, {0x1F300, 0x1F64F},
              {0x1F900, 0x1F9FF}, {0x20000, 0x3FFFD}}))
    return 2;
  return 1;
}

size_t display_width(std::string_view visible) {
  size_t w = 0;
  for (size_t i = 0; i < visible.size();) {
    CodePoint cp = decode_utf8(visible, i);
    if (cp.len == 0) {  // not expected for visible text; count the byte as one column
      ++w;
      ++i;
      continue;
    }
    w += static_cast<size_t>(codepoint_width(cp.cp));
    i += cp.len;
  }
  return w;
}

std::vector<Glyph> to_glyphs(std::string_view s, Whitespace mode) {
  std::vector<Glyph> out;
  const bool prose = mode == Whitespace::prose;
  for (size_t i = 0; i < s.size();) {
    CodePoint cp = decode_utf8(s, i);
    if (cp.len == 0) {
      out.push_back(escaped(hex_escape("\\x", static_cast<unsigned char>(s[i]), 2)));
      ++i;
      continue;
    }
    std::string_view bytes = s.substr(i, cp.len);
    i += cp.len;
    switch (cp.cp) {
      case U' ':
      case U'\t':
        if (prose) {
          out.push_back({" ", 1, false, true});
        } else {
          out.push_back({cp.cp == U' ' ? "\u2423" : "\u2192", 1});
        }
        continue;
      case U'\n':
        if (prose) {
          out.push_back({"", 0, true, true});
        } else {
          out.push_back({"\u21B5", 1});
        }
        continue;
      default:
        break;
    }
    if (cp.cp < 0x20 || cp.cp == 0x7F) {
      out.push_back(escaped(hex_escape("\\x", static_cast<unsigned>(cp.cp), 2)));
    } else if ((cp.cp >= 0x80 && cp.cp < 0xA0) || invisible_format(cp.cp)) {
      out.push_back(escaped(hex_escape("\\u", static_cast<unsigned>(cp.cp), 4)));
    } else {
      out.push_back({std::string(bytes), static_cast<size_t>(codepoint_width(cp.cp))});
    }
  }
  return out;
}

std::string visible_token(std::string_view s, size_t max_cols) {
  std::vector<Glyph> glyphs = to_glyphs(s, Whitespace::visible);
  size_t total = 0;
  for (const Glyph& g : glyphs) total += g.width;
  std::string out;
  if (max_cols == 0 || total <= max_cols) {
    for (const Glyph& g : glyphs) out += g.text;
    return out;
  }
  // Keep whole glyphs (never half an escape or a wide character) and leave a column for '…'.
  size_t used = 0;
  for (const Glyph& g : glyphs) {
    if (used + g.width + 1 > max_cols) break;
    out += g.text;
    used += g.width;
  }
  return out + "\u2026";
}

std::string pad(std::string_view visible, size_t width, bool right) {
  size_t w = display_width(visible);
  std::string fill(width > w ? width - w : 0, ' ');
  return right ? fill + std::string(visible) : std::string(visible) + fill;
}

}  // namespace pizza::report::detail
