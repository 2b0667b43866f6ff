// Splitting a delimited command-line value ("a:b,c:d", "prob-diff,cosine"), and trimming a
// value read from a file, the environment or a header.
#pragma once

#include <cctype>
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

// `text` without its leading and trailing whitespace (std::isspace).
inline std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace pizza
