#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "util/error.h"

namespace pizza {

// A pre-tokenized piece: text[begin, end), preceded by a virtual ' ' when `prefix` (HF's
// add_prefix_space inserts one that is not in the original text).
struct BpeTokenizer::Piece {
  size_t begin = 0;
  size_t end = 0;
  bool prefix = false;
};

namespace {

// `s` with every `from` replaced by `to` (literal).
std::string replace_literal(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  for (size_t pos = 0;;) {
    size_t hit = s.find(from, pos);
    out.append(s.substr(pos, hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

}  // namespace

BpeTokenizer::BpeTokenizer(BpeSpec spec) : spec_(std::move(spec)), added_by_first_byte_(256) {
  normalizes_ = !spec_.normalizer.empty() || spec_.metaspace.has_value();
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
  if (!spec_.model->has(id)) return {};
  if (!spec_.decoder) return spec_.model->bytes(id);
  std::string out = spec_.model->piece(id);
  // A byte-fallback token stands for its byte of the input, whatever the decoder makes of it.
  if (spec_.model->byte_fallback()) {
    if (auto b = byte_fallback_value(out)) return std::string(1, *b);
  }
  // Otherwise the per-token part of the decoder chain, for a token that is not the first.
  RegexScratch scratch;
  for (const auto& step : *spec_.decoder) {
    using K = DecodeStep::Kind;
    if (step.kind == K::kByteFallback) {
      if (auto b = byte_fallback_value(out)) return std::string(1, *b);
    } else if (step.kind == K::kReplace) {
      out = replace_all(out, *step.pattern, step.text, scratch);
    } else if (step.kind == K::kMetaspace) {
      out = replace_literal(out, step.text, " ");
    }
  }
  return out;
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
  // Normalisation can merge characters (NFC) or split one into several tokens' worth, so
  // mapped spans may overlap or leave gaps; make them tile the input.
  if (normalizes_) make_spans_contiguous(enc.tokens, text.size());
  return enc;
}

std::vector<BpeTokenizer::Piece> BpeTokenizer::apply_metaspace(NormalizedText& nt, bool at_start,
                                                               RegexScratch& scratch) const {
  const MetaspaceSpec& m = *spec_.metaspace;
  apply_normalize_step({NormalizeStep::Kind::kReplace, m.replacement, m.space}, nt, scratch);
  const bool prepend = m.prepend == MetaspaceSpec::Prepend::kAlways ||
                       (m.prepend == MetaspaceSpec::Prepend::kFirst && at_start);
  if (prepend && !nt.text.starts_with(m.replacement)) {
    apply_normalize_step({NormalizeStep::Kind::kPrepend, m.replacement, nullptr}, nt, scratch);
  }
  std::vector<Piece> pieces;
  if (nt.text.empty()) return pieces;
  if (!m.split) return {Piece{0, nt.text.size(), false}};
  // HF's MergedWithNext: every replacement starts a new piece ("▁Hey▁▁x" -> ▁Hey, ▁, ▁x).
  size_t start = 0;
  for (size_t hit = nt.text.find(m.replacement, 1); hit != std::string::npos;
       hit = nt.text.find(m.replacement, hit + m.replacement.size())) {
    pieces.push_back({start, hit, false});
    start = hit;
  }
  pieces.push_back({start, nt.text.size(), false});
  return pieces;
}

void BpeTokenizer::encode_ordinary(std::string_view text, size_t begin, size_t end,
                                   RegexScratch& scratch, std::vector<Token>& tokens) const {
  if (begin >= end) return;
  if (!normalizes_) return encode_pieces(text, {{begin, end, false}}, nullptr, scratch, tokens);
  NormalizedText nt = NormalizedText::identity(text.substr(begin, end - begin), begin);
  for (const auto& step : spec_.normalizer) apply_normalize_step(step, nt, scratch);
  std::vector<Piece> pieces;
  if (spec_.metaspace) {
    pieces = apply_metaspace(nt, begin == 0, scratch);
  } else if (!nt.text.empty()) {
    pieces.push_back({0, nt.text.size(), false});
  }
  encode_pieces(nt.text, std::move(pieces), &nt, scratch, tokens);
}

void BpeTokenizer::encode_pieces(std::string_view text, std::vector<Piece> pieces,
                                 const NormalizedText* nt, RegexScratch& scratch,
                                 std::vector<Token>& tokens) const {
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
  std::vector<BpeSymbol> ids;
  for (const auto& p : pieces) {
    ids.clear();
    std::string_view bytes = text.substr(p.begin, p.end - p.begin);
    if (p.prefix) {
      buf.assign(1, ' ');
      buf.append(bytes);
      bytes = buf;
    }
    spec_.model->encode_piece(bytes, ids);
    // Token spans in `text` bytes (the virtual space covers nothing), then in the input's.
    const size_t shift = p.prefix ? 1 : 0;
    size_t cursor = 0;  // in piece bytes
    for (const BpeSymbol& sym : ids) {
      size_t next_cursor = cursor + sym.len;
      size_t b = p.begin + (cursor > shift ? cursor - shift : 0);
      size_t e = p.begin + (next_cursor > shift ? next_cursor - shift : 0);
      if (nt) {
        const ByteRange r = nt->original(b, e);
        b = r.begin;
        e = r.end;
      }
      tokens.push_back(Token{sym.id, spec_.model->piece(sym.id), b, e, false});
      cursor = next_cursor;
    }
  }
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  if (spec_.decoder) {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (const AddedToken* a = added(id)) {
        if (!(a->special && skip_special)) pieces.push_back(a->content);
      } else if (spec_.model->has(id)) {
        pieces.push_back(spec_.model->piece(id));
      } else {
        throw InputError("token id " + std::to_string(id) + " is not in the vocabulary of " +
                         spec_.description);
      }
    }
    return decode_chain(std::move(pieces));
  }
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

std::string BpeTokenizer::decode_chain(std::vector<std::string> tokens) const {
  RegexScratch scratch;
  for (const auto& step : *spec_.decoder) {
    using K = DecodeStep::Kind;
    switch (step.kind) {
      case K::kReplace:
        for (auto& t : tokens) t = replace_all(t, *step.pattern, step.text, scratch);
        break;
      case K::kByteFallback: {
        std::vector<std::string> out;
        std::string run;
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (byte_level::invalid_utf8_offset(run) == std::string::npos) {
            out.push_back(run);
          } else {
            for (size_t k = 0; k < run_tokens; ++k) out.emplace_back("\xEF\xBF\xBD");
          }
          run.clear();
          run_tokens = 0;
        };
        for (auto& t : tokens) {
          if (auto b = byte_fallback_value(t)) {
            run += *b;
            ++run_tokens;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case K::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case K::kStrip:
        for (auto& t : tokens) {
          std::string_view v = t;
          for (size_t k = 0; k < step.start && v.starts_with(step.text); ++k) v.remove_prefix(step.text.size());
          for (size_t k = 0; k < step.stop && v.ends_with(step.text); ++k) v.remove_suffix(step.text.size());
          t = std::string(v);
        }
        break;
      case K::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_literal(tokens[i], step.text, i == 0 && step.prepend ? "" : " ");
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace pizza
