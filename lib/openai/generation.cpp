#include "openai/generation.h"

#include <algorithm>

namespace pizza::serve {

size_t final_text_length(std::string_view text, std::span<const std::string> stops) {
  size_t n = text.size();
  // An incomplete UTF-8 sequence at the end: its other bytes come with the next tokens.
  for (size_t k = 1; k <= std::min<size_t>(4, text.size()); ++k) {
    const auto c = static_cast<unsigned char>(text[text.size() - k]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for the lead
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > k) n = text.size() - k;
    break;
  }
  // U+FFFD is what lossy decoders (Hugging Face's, sentencepiece's) write for such a sequence
  // until the token completing it arrives; a real one is sent with the next text or at the end.
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  while (text.substr(0, n).ends_with(kReplacement)) n -= kReplacement.size();
  // The beginning of a stop string: if the next tokens complete it, it must never have been sent.
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > 0; --k)
      if (text.ends_with(std::string_view(s).substr(0, k))) {
        n = std::min(n, text.size() - k);
        break;
      }
  return n;
}

}  // namespace pizza::serve
