// Shared helpers for the report tests: hand-built results and terminal text measurement.
#pragma once

#include <string>
#include <string_view>

#include "result/attribution_result.h"
#include "support/paths.h"

namespace pizza::test {

// A small gradient-style result built by hand: a BOS special, prompt tokens with tricky text
// (comma, quotes, newline, non-ASCII, a two-id word unit), one earlier generated token as
// the last column, and three outputs. Values are chosen to stress round-tripping (denormal,
// largest double, negative zero, 1/3, 0.1). Layout is documented in report_fixtures.cpp.
AttributionResult sample_result();

// The same shape with a second metric matrix and row_stats.
AttributionResult sample_result_two_metrics();

// Display columns of terminal text after removing ANSI escape sequences: code points, with
// CJK ideographs counted as 2 (the only wide characters the fixtures use).
size_t terminal_width_of(std::string_view line);
std::string strip_ansi(std::string_view s);

}  // namespace pizza::test
