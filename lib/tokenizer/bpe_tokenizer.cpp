#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "util/error.h"

namespace pizza {
namespace {

// A pre-tokenized piece: text[begin, end), preceded by a virtual ' ' when `prefix` (HF's
// add_prefix_space inserts one that is not in the original text).
struct Piece {
  size_t begin = 0;
  size_t end = 0;
  bool prefix = false;
};

}  // namespace

BpeTokenizer::BpeTokenizer(BpeSpec spec) : spec_(std::move(spec)), added_by_first_byte_(256) {
  vocab_size_ = spec_.model->size();
  for (const auto& a : spec_.added) vocab_size_ = std::max(vocab_size_, a.id + 1);
  added_index_.assign(static_cast<size_t>(vocab_size_), -1);
  for (size_t i = 0; i < spec_.added.size(); ++i) {
    const auto& a = spec_.added[i];
    added_index_[a.id] = static_cast<int32_t>(i);
    if (!a.content.empty()) {
      added_by_first_byte_[static_cast<unsigned char>(a.content[0])].push_back(i);
    }
  }
  for (auto& list : added_by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](size_t x, size_t y) {
      return spec_.added[x].content.size() > spec_.added[y].content.size();
    });
  }
}

const AddedToken* BpeTokenizer::added(int32_t id) const {
  if (id < 0 || id >= vocab_size_ || added_index_[id] < 0) return nullptr;
  return &spec_.added[static_cast<size_t>(added_index_[id])];
}

bool BpeTokenizer::is_special(int32_t id) const {
  const AddedToken* a = added(id);
  return a && a->special;
}

std::string BpeTokenizer::piece(int32_t id) const {
  if (const AddedToken* a = added(id)) return a->content;
  return spec_.model->has(id) ? spec_.model->piece(id) : std::string();
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  if (const AddedToken* a = added(id)) return a->special ? std::string() : a->content;
  return spec_.model->has(id) ? spec_.model->bytes(id) : std::string();
}

Token BpeTokenizer::control_token(int32_t id, size_t at) const {
  return Token{id, piece(id), at, at, is_special(id)};
}

Encoding BpeTokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  if (size_t bad = byte_level::invalid_utf8_offset(text); bad != std::string_view::npos) {
    throw InputError("text to tokenize is not valid UTF-8 (byte offset " + std::to_string(bad) +
                     ")");
  }
  Encoding enc;
  enc.tokens.reserve(text.size() / 3 + 4);
  if (opts.add_special_tokens) {
    for (int32_t id : spec_.prefix_ids) enc.tokens.push_back(control_token(id, 0));
  }
  RegexScratch scratch;
  size_t segment = 0;  // start of text not yet encoded
  for (size_t i = 0; i < text.size(); ++i) {
    const auto& candidates = added_by_first_byte_[static_cast<unsigned char>(text[i])];
    for (size_t idx : candidates) {
      const AddedToken& a = spec_.added[idx];
      if ((a.special && !opts.parse_special) || !text.substr(i).starts_with(a.content)) continue;
      encode_ordinary(text, segment, i, scratch, enc.tokens);
      enc.tokens.push_back(Token{a.id, a.content, i, i + a.content.size(), a.special});
      segment = i + a.content.size();
      i = segment - 1;
      break;
    }
  }
  encode_ordinary(text, segment, text.size(), scratch, enc.tokens);
  if (opts.add_special_tokens) {
    for (int32_t id : spec_.suffix_ids) enc.tokens.push_back(control_token(id, text.size()));
  }
  return enc;
}

void BpeTokenizer::encode_ordinary(std::string_view text, size_t begin, size_t end,
                                   RegexScratch& scratch, std::vector<Token>& tokens) const {
  if (begin >= end) return;
  std::vector<Piece> pieces{{begin, end, false}};
  std::vector<Piece> next;
  std::vector<ByteRange> ranges;
  std::string buf;
  for (const auto& step : spec_.steps) {
    if (step.kind == PreTokenizeStep::Kind::kPrefixSpace) {
      for (auto& p : pieces) p.prefix = p.prefix || text[p.begin] != ' ';
      continue;
    }
    next.clear();
    for (const auto& p : pieces) {
      ranges.clear();
      if (!p.prefix) {
        step.regex->split(text.substr(p.begin, p.end - p.begin), p.begin, ranges, scratch);
        for (const auto& r : ranges) next.push_back({r.begin, r.end, false});
        continue;
      }
      // Run the regex on the piece as HF sees it, virtual space included, then map back: the
      // space is buffer byte 0, original byte k is buffer byte k + 1.
      buf.assign(1, ' ');
      buf.append(text.substr(p.begin, p.end - p.begin));
      step.regex->split(buf, 0, ranges, scratch);
      for (const auto& r : ranges) {
        next.push_back(r.begin == 0 ? Piece{p.begin, p.begin + r.end - 1, true}
                                    : Piece{p.begin + r.begin - 1, p.begin + r.end - 1, false});
      }
    }
    pieces.swap(next);
  }
  std::vector<int32_t> ids;
  for (const auto& p : pieces) {
    ids.clear();
    std::string_view bytes = text.substr(p.begin, p.end - p.begin);
    if (p.prefix) {
      buf.assign(1, ' ');
      buf.append(bytes);
      bytes = buf;
    }
    spec_.model->encode_piece(bytes, ids);
    // Token spans in original-text bytes; the virtual space covers nothing.
    const size_t shift = p.prefix ? 1 : 0;
    size_t cursor = 0;  // in piece bytes
    for (int32_t id : ids) {
      size_t next_cursor = cursor + spec_.model->bytes(id).size();
      size_t b = p.begin + (cursor > shift ? cursor - shift : 0);
      size_t e = p.begin + (next_cursor > shift ? next_cursor - shift : 0);
      tokens.push_back(Token{id, spec_.model->piece(id), b, e, false});
      cursor = next_cursor;
    }
  }
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (const AddedToken* a = added(id)) {
      if (!(a->special && skip_special)) bytes += a->content;
    } else if (spec_.model->has(id)) {
      bytes += spec_.model->bytes(id);
    } else {
      throw InputError("token id " + std::to_string(id) + " is not in the vocabulary of " +
                       spec_.description);
    }
  }
  return byte_level::utf8_lossy(bytes);
}

}  // namespace pizza
