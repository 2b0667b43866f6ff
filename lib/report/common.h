// Pieces shared by the writers: consistency checks on the result, the prompt split into
// coloured segments, and the heat colour scale.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "result/attribution_result.h"

namespace pizza::report::detail {

// Throws InputError naming the first inconsistency: no matrix, a matrix whose shape differs
// from outputs x inputs or whose value count is wrong, a row_stats vector of the wrong length,
// a span outside the text, a parameter/extra value that is not valid JSON, a duplicate name,
// a value that is not finite (require_finite). Every format renders only validated results.
void validate(const AttributionResult& result);

// The prompt as a sequence of pieces, each either owned by one input unit (unit >= 0) or a
// gap no unit covers (unit == -1). Pieces split only at code point boundaries: a character
// whose bytes several units share (byte-fallback tokens) belongs to the unit holding its
// first byte. Special units (no span) appear at their place in input order.
struct Segment {
  std::string text;
  int unit = -1;
};
std::vector<Segment> prompt_segments(const AttributionResult& result);

// For a generated input unit, the output row it repeats (the k-th generated unit is output
// k); -1 for prompt units. Used to blank the cells a row cannot depend on.
std::vector<int> generated_output_index(const AttributionResult& result);

// Largest finite |v|; 0 when there is none.
double max_abs(std::span<const double> values);

struct Rgb {
  uint8_t r = 255, g = 255, b = 255;
};
// Diverging scale: white at 0, red for positive, blue for negative, full at |score| = scale.
// Non-finite scores are grey. The HTML page's script implements the same formula.
Rgb heat_color(double score, double scale);
// Black or white, whichever reads better on `bg`.
Rgb text_color_on(Rgb bg);

}  // namespace pizza::report::detail
