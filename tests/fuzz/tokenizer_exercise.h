// What the tokenizer targets do with a tokenizer that loaded: encode and decode a few texts,
// so that a file which loads but describes a broken vocabulary (ids out of range, empty special
// tokens, merges of unknown pieces...) is caught when it is used, not only when it is read.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pizza::fuzz {

// `extra` is a text taken from the fuzzer's input, so that the text side is fuzzed as well.
inline void exercise_tokenizer(const Tokenizer& tok, std::string_view extra) {
  static constexpr std::string_view kSamples[] = {
      "Once upon a time, there was a little girl named Lily.",
      " hello  world\n\n\t123 4567 it's <s></s><|endoftext|> caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8D\x95",
      "",
  };
  std::vector<std::string_view> texts(std::begin(kSamples), std::end(kSamples));
  texts.push_back(extra);
  for (auto text : texts) {
    for (bool special : {false, true}) {
      const Encoding e = tok.encode(text, EncodeOptions{.add_special_tokens = special, .parse_special = special});
      const std::vector<int32_t> ids = e.ids();
      (void)tok.decode(ids, /*skip_special=*/special);
      for (int32_t id : ids) {
        (void)tok.token_bytes(id);
        (void)tok.piece(id);
        (void)tok.is_special(id);
      }
    }
  }
  // The ends of the vocabulary, where off-by-one errors live.
  const int32_t n = tok.vocab_size();
  for (int32_t id : {0, 1, n / 2, n - 2, n - 1}) {
    if (id < 0 || id >= n) continue;
    (void)tok.token_bytes(id);
    (void)tok.piece(id);
    const std::vector<int32_t> one{id};
    (void)tok.decode(one, false);
  }
  (void)tok.describe();
}

// The last up-to-64 bytes of an input, as the extra text to encode.
inline std::string_view tail_text(std::string_view in) { return in.substr(in.size() - std::min<size_t>(in.size(), 64)); }

}  // namespace pizza::fuzz
