// Terminal text helpers for the table writer: UTF-8 decoding, display width, and turning
// token bytes into visible, terminal-safe glyphs (no raw control bytes ever reach the
// terminal, so a token cannot inject escape sequences).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/utf8.h"

namespace pizza::report::detail {

using pizza::CodePoint;
using pizza::decode_utf8;

// Terminal columns of a printable code point: 0 for combining marks, 2 for East Asian wide
// and emoji, else 1.
int codepoint_width(char32_t cp);

// Display columns of already-visible text (valid UTF-8 without control characters).
size_t display_width(std::string_view visible);

struct Glyph {
  std::string text;  // what to print
  size_t width = 0;  // its display columns
  bool newline = false;  // prose mode: a line break
  bool space = false;    // prose mode: a break opportunity for word wrapping
};

// visible: for token labels: space '␣', newline '↵', tab '→'.
// prose: for running text: space stays a space, newline stays a line break, tab is a space.
// Both: other C0/C1 controls and DEL as \xNN / \uNNNN, invisible format characters (zero width,
// bidi overrides, BOM) as \uNNNN, invalid UTF-8 bytes as \xNN.
enum class Whitespace { visible, prose };
std::vector<Glyph> to_glyphs(std::string_view s, Whitespace mode);

// A token as a visible label of at most max_cols display columns ('…' marks truncation;
// max_cols == 0 means no limit).
std::string visible_token(std::string_view s, size_t max_cols);

// Pads `visible` with spaces to `width` columns (right-aligned when `right`).
std::string pad(std::string_view visible, size_t width, bool right);

}  // namespace pizza::report::detail
