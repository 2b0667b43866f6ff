#include "tokenizer/tokenizer.h"

#include <simdjson.h>

#include <algorithm>

#include "util/error.h"
#include "util/file.h"

namespace pizza {

std::vector<int32_t> Encoding::ids() const {
  std::vector<int32_t> out;
  out.reserve(tokens.size());
  for (const auto& t : tokens) out.push_back(t.id);
  return out;
}

void make_spans_contiguous(std::vector<Token>& tokens, size_t text_size) {
  // Tokens that share one span (byte-fallback pieces of a single character) each take one
  // byte of it, the last one the remainder.
  for (size_t i = 0; i < tokens.size();) {
    size_t j = i + 1;
    while (j < tokens.size() && !tokens[i].special && !tokens[j].special && tokens[j].begin == tokens[i].begin &&
           tokens[j].end == tokens[i].end && tokens[i].end > tokens[i].begin)
      ++j;
    if (j - i > 1) {
      const size_t b = tokens[i].begin, e = tokens[i].end;
      for (size_t k = i; k < j; ++k) {
        tokens[k].begin = std::min(b + (k - i), e);
        tokens[k].end = k + 1 == j ? e : std::min(b + (k - i) + 1, e);
      }
    }
    i = j;
  }
  // Then close gaps (normalisation may drop bytes) so spans concatenate to the text.
  // Zero-width tokens (BOS/EOS, a dummy-prefix piece) stay zero-width where they are.
  size_t pos = 0;
  for (auto& t : tokens) {
    const bool zero_width = t.end <= t.begin;
    t.begin = std::min(pos, text_size);
    t.end = zero_width ? t.begin : std::clamp(t.end, t.begin, text_size);
    pos = t.end;
  }
  if (pos >= text_size || tokens.empty()) return;
  // Trailing bytes the normaliser dropped (e.g. trailing spaces) go to the last token that
  // covers text; when none does (text of spaces only, which encodes to BOS alone), to the
  // last token, so the spans still concatenate to the input. Tokens after it move to the end.
  auto last = tokens.end() - 1;
  for (auto it = tokens.end(); it != tokens.begin();) {
    --it;
    if (!it->special || it->end > it->begin) {
      last = it;
      break;
    }
  }
  last->end = text_size;
  for (auto it = last + 1; it != tokens.end(); ++it) it->begin = it->end = text_size;
}

std::string decode_continuation(const Tokenizer& tok, std::span<const int64_t> prompt,
                                std::span<const int64_t> generated) {
  std::vector<int32_t> all(prompt.begin(), prompt.end());
  const auto head = tok.decode(all);
  all.insert(all.end(), generated.begin(), generated.end());
  auto full = tok.decode(all);
  if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
  // Decoding is not always prefix-stable (normalisers); fall back to the new tokens alone.
  return tok.decode(std::vector<int32_t>(generated.begin(), generated.end()));
}

namespace {

// A special-token entry is either a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_string(simdjson::dom::object obj, std::string_view key) {
  simdjson::dom::element e;
  if (obj[key].get(e) || e.is_null()) return std::nullopt;
  std::string_view s;
  if (!e.get(s)) return std::string(s);
  if (!e["content"].get(s)) return std::string(s);
  return std::nullopt;
}

}  // namespace

TokenizerConfig load_tokenizer_config(const std::filesystem::path& dir) {
  TokenizerConfig cfg;
  simdjson::dom::parser parser;
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    auto path = dir / name;
    if (!std::filesystem::exists(path)) continue;
    auto text = read_file(path);
    simdjson::dom::element root;
    simdjson::dom::object obj;
    if (parser.parse(text).get(root) || root.get(obj)) throw InputError(path.string() + ": not a valid JSON object");
    // tokenizer_config.json is read last and wins.
    for (auto [key, field] : {std::pair{"bos_token", &cfg.bos_token}, std::pair{"eos_token", &cfg.eos_token},
                              std::pair{"unk_token", &cfg.unk_token}, std::pair{"pad_token", &cfg.pad_token}})
      if (auto s = token_string(obj, key)) *field = s;
    for (auto [key, field] : {std::pair{"add_bos_token", &cfg.add_bos_token}, std::pair{"add_eos_token", &cfg.add_eos_token}}) {
      simdjson::dom::element e;
      bool b = false;
      if (!obj[key].get(e) && !e.get(b)) *field = b;
    }
  }
  return cfg;
}

std::optional<char> byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t.back() != '>') return std::nullopt;
  unsigned v = 0;
  for (char c : t.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;
  }
  return static_cast<char>(v);
}

}  // namespace pizza
