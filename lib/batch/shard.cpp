#include "batch/shard.h"

#include <charconv>
#include <string>

#include "util/error.h"

namespace pizza::batch {

namespace {

bool parse_size(std::string_view s, size_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Shard parse_shard(std::string_view spec) {
  const size_t slash = spec.find('/');
  Shard s;
  if (slash == std::string_view::npos || !parse_size(spec.substr(0, slash), s.index) ||
      !parse_size(spec.substr(slash + 1), s.count) || s.count == 0 || s.index >= s.count)
    throw UsageError("--shard: expected i/n with 0 <= i < n (e.g. 0/4), got '" + std::string(spec) + "'");
  return s;
}

}  // namespace pizza::batch
