// Arithmetic on counts that come from outside (a request's max_tokens, a -n option, a file's
// header): they can be as large as the type allows, so sums are never formed where they could
// overflow. Every context-length check uses these.
#pragma once

#include <cstdint>
#include <limits>

namespace pizza {

// Whether `used + more` items fit in `limit`, without computing the sum. Negative counts never fit.
constexpr bool fits_within(int64_t used, int64_t more, int64_t limit) {
  return used >= 0 && more >= 0 && used <= limit && more <= limit - used;
}

// a + b for non-negative counts, saturating at INT64_MAX (for messages that show a requested total).
constexpr int64_t saturating_add(int64_t a, int64_t b) {
  return b > 0 && a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

}  // namespace pizza
