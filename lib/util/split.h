// Splitting a delimited command-line value ("a:b,c:d", "prob-diff,cosine").
#pragma once

#include <string_view>
#include <vector>

namespace pizza {

// Every piece between separators, empty ones included ("a,,b" -> a, "", b; "" -> one empty
// piece), so that callers reject empty items with their own message.
inline std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  for (size_t pos = 0;;) {
    const auto at = text.find(separator, pos);
    out.push_back(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) return out;
    pos = at + 1;
  }
}

}  // namespace pizza
