// Sentencepiece BPE models (tokenizer.model), implemented here rather than through
// libsentencepiece: Debian's libsentencepiece embeds its own copy of protobuf-lite and
// exports its symbols, which collide with the libprotobuf that libtorch loads and crash the
// process at start-up. The model file is a small protobuf that we parse directly, and BPE
// encoding follows sentencepiece's bpe_model: merge the adjacent pair whose merged piece has
// the highest score (leftmost on ties), then resegment unused pieces, then byte-fallback.
#include "tokenizer/sentencepiece.h"

#include <array>
#include <cstring>
#include <queue>
#include <unordered_map>

#include "util/error.h"
#include "util/file.h"

namespace pizza {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, sentencepiece's visible space

enum class PieceType { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// Minimal protobuf wire-format reader: enough for sentencepiece's ModelProto.
class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::filesystem::path& path) : d_(data), path_(path) {}
  bool done() const { return pos_ >= d_.size(); }
  // Reads a field key; returns {field number, wire type}.
  std::pair<uint32_t, uint32_t> key() {
    auto k = varint();
    return {static_cast<uint32_t>(k >> 3), static_cast<uint32_t>(k & 7)};
  }
  uint64_t varint() {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= d_.size()) bad();
      auto c = static_cast<uint8_t>(d_[pos_++]);
      r |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (c < 0x80) return r;
    }
    bad();
  }
  std::string_view bytes() {
    auto n = varint();
    if (n > d_.size() - pos_) bad();
    auto s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float fixed32() {
    if (d_.size() - pos_ < 4) bad();
    float f;
    std::memcpy(&f, d_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (d_.size() - pos_ < 8) bad(); pos_ += 8; break;
      case 2: bytes(); break;
      case 5: fixed32(); break;
      default: bad();
    }
  }
  [[noreturn]] void bad() const { throw InputError(path_.string() + ": not a valid sentencepiece model (corrupt protobuf)"); }

 private:
  std::string_view d_;
  size_t pos_ = 0;
  const std::filesystem::path& path_;
};

struct Piece {
  std::string text;
  float score = 0;
  PieceType type = PieceType::normal;
};

// One SentencePiece message of the ModelProto.
Piece parse_piece(std::string_view bytes, const std::filesystem::path& path) {
  ProtoReader pr(bytes, path);
  Piece p;
  while (!pr.done()) {
    auto [f, w] = pr.key();
    if (f == 1 && w == 2) p.text = std::string(pr.bytes());
    else if (f == 2 && w == 5) p.score = pr.fixed32();
    else if (f == 3 && w == 0) p.type = static_cast<PieceType>(pr.varint());
    else pr.skip(w);
  }
  return p;
}

size_t utf8_char_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// Length of the UTF-8 character starting at s[i], or 1 when the bytes there are not a whole,
// well-formed sequence (a truncated lead byte must not swallow the next character's bytes;
// each invalid byte becomes a byte-fallback token of its own).
size_t utf8_valid_len(std::string_view s, size_t i) {
  const size_t n = utf8_char_len(static_cast<unsigned char>(s[i]));
  if (n == 1 || i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  return n;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& path, const TokenizerConfig& cfg) : path_(path) {
    parse(read_file(path));
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const auto& p = pieces_[i];
      const auto id = static_cast<int32_t>(i);
      if (p.type == PieceType::byte) {
        unsigned v = 0;
        if (std::sscanf(p.text.c_str(), "<0x%02X>", &v) == 1) byte_ids_[v] = id;
      } else if (p.type == PieceType::control || p.type == PieceType::unknown) {
        // Matched by id only, never from text.
      } else {
        by_text_.emplace(p.text, id);
        if (p.type == PieceType::user_defined) user_defined_.push_back(id);
      }
      if (p.type == PieceType::unknown) unk_ = id;
    }
    add_bos_ = cfg.add_bos_token.value_or(true);
    add_eos_ = cfg.add_eos_token.value_or(false);
    auto find_special = [&](const std::optional<std::string>& text, int64_t fallback) -> std::optional<int32_t> {
      if (text) {
        for (size_t i = 0; i < pieces_.size(); ++i)
          if (pieces_[i].text == *text) return static_cast<int32_t>(i);
        return std::nullopt;
      }
      if (fallback >= 0 && fallback < static_cast<int64_t>(pieces_.size())) return static_cast<int32_t>(fallback);
      return std::nullopt;
    };
    bos_ = find_special(cfg.bos_token, bos_default_);
    eos_ = find_special(cfg.eos_token, eos_default_);
    pad_ = find_special(cfg.pad_token, cfg.pad_token ? -1 : pad_default_);
  }

  Encoding encode(std::string_view text, const EncodeOptions& opts) const override {
    Encoding enc;
    if (opts.add_special_tokens && add_bos_ && bos_) enc.tokens.push_back(special_token(*bos_, 0));
    size_t pos = 0;
    while (pos <= text.size()) {
      // Optionally split on the text of control tokens (e.g. "</s>") so they map to their ids.
      size_t next = text.size();
      std::optional<int32_t> hit;
      if (opts.parse_special) {
        for (auto id : {bos_, eos_}) {
          if (!id) continue;
          auto f = text.find(pieces_[static_cast<size_t>(*id)].text, pos);
          if (f < next) next = f, hit = id;
        }
      }
      encode_segment(text.substr(pos, next - pos), pos, enc);
      if (!hit) break;
      auto t = special_token(*hit, next);
      t.end = next + pieces_[static_cast<size_t>(*hit)].text.size();
      enc.tokens.push_back(t);
      pos = t.end;
    }
    if (opts.add_special_tokens && add_eos_ && eos_) enc.tokens.push_back(special_token(*eos_, text.size()));
    make_spans_contiguous(enc.tokens, text.size());
    return enc;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out, pending_bytes;
    bool first = true;
    auto flush_bytes = [&] {
      out += sanitize_utf8(pending_bytes);
      pending_bytes.clear();
    };
    for (auto id : ids) {
      check_id(id);
      const auto& p = pieces_[static_cast<size_t>(id)];
      if (p.type == PieceType::byte) {
        pending_bytes += token_bytes(id);
        first = false;
        continue;
      }
      flush_bytes();
      if (p.type == PieceType::control) {
        if (!skip_special) out += p.text;
        continue;
      }
      if (p.type == PieceType::unknown) {
        out += unk_surface_;
        first = false;
        continue;
      }
      auto s = token_bytes(id);
      // The dummy prefix added at encoding is removed from the first piece.
      if (first && add_dummy_prefix_ && !s.empty() && s[0] == ' ') s.erase(0, 1);
      out += s;
      first = false;
    }
    flush_bytes();
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    const auto& p = pieces_[static_cast<size_t>(id)];
    if (p.type == PieceType::control || p.type == PieceType::unknown) return {};
    if (p.type == PieceType::byte) {
      unsigned v = 0;
      std::sscanf(p.text.c_str(), "<0x%02X>", &v);
      return std::string(1, static_cast<char>(v));
    }
    std::string out;
    for (size_t i = 0; i < p.text.size();) {
      if (std::string_view(p.text).substr(i, 3) == kSpace) {
        out += ' ';
        i += 3;
      } else {
        out += p.text[i++];
      }
    }
    return out;
  }

  std::string piece(int32_t id) const override {
    check_id(id);
    return pieces_[static_cast<size_t>(id)].text;
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && pieces_[static_cast<size_t>(id)].type == PieceType::control;
  }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  std::optional<int32_t> unk_id() const override { return unk_; }
  std::string describe() const override { return "sentencepiece:" + path_.string(); }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InputError("token id " + std::to_string(id) + " is outside the vocabulary of " + path_.string() + " (" +
                       std::to_string(vocab_size()) + " tokens)");
  }

  static std::string sanitize_utf8(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const size_t n = utf8_valid_len(s, i);
      if (n > 1 || static_cast<unsigned char>(s[i]) < 0x80) {
        out.append(s, i, n);
        i += n;
      } else {
        out += "\xEF\xBF\xBD";  // U+FFFD, as sentencepiece decodes invalid byte sequences
        ++i;
      }
    }
    return out;
  }

  void parse(const std::string& data) {
    ProtoReader r(data, path_);
    int model_type = 1;  // UNIGRAM is sentencepiece's default
    while (!r.done()) {
      auto [field, wire] = r.key();
      if (field == 1 && wire == 2) {  // SentencePiece
        pieces_.push_back(parse_piece(r.bytes(), path_));
      } else if (field == 2 && wire == 2) {  // TrainerSpec
        ProtoReader tr(r.bytes(), path_);
        while (!tr.done()) {
          auto [f, w] = tr.key();
          if (f == 3 && w == 0) model_type = static_cast<int>(tr.varint());
          else if (f == 35 && w == 0) byte_fallback_ = tr.varint() != 0;
          else if (f == 24 && w == 0) whitespace_suffix_ = tr.varint() != 0;
          else if (f == 41 && w == 0) bos_default_ = static_cast<int32_t>(tr.varint());
          else if (f == 42 && w == 0) eos_default_ = static_cast<int32_t>(tr.varint());
          else if (f == 43 && w == 0) pad_default_ = static_cast<int32_t>(tr.varint());
          else if (f == 44 && w == 2) unk_surface_ = std::string(tr.bytes());
          else tr.skip(w);
        }
      } else if (field == 3 && wire == 2) {  // NormalizerSpec
        ProtoReader nr(r.bytes(), path_);
        while (!nr.done()) {
          auto [f, w] = nr.key();
          if (f == 1 && w == 2) normalizer_ = std::string(nr.bytes());
          else if (f == 2 && w == 2) has_charsmap_ = !nr.bytes().empty();
          else if (f == 3 && w == 0) add_dummy_prefix_ = nr.varint() != 0;
          else if (f == 4 && w == 0) remove_extra_whitespaces_ = nr.varint() != 0;
          else if (f == 5 && w == 0) escape_whitespaces_ = nr.varint() != 0;
          else nr.skip(w);
        }
      } else {
        r.skip(wire);
      }
    }
    if (pieces_.empty()) throw InputError(path_.string() + ": sentencepiece model has no pieces");
    if (model_type != 2)
      throw InputError(path_.string() + ": sentencepiece model type " + std::to_string(model_type) +
                       " is not supported (only BPE models, as used by Llama/Mistral/TinyStories)");
    if (has_charsmap_ || (!normalizer_.empty() && normalizer_ != "identity"))
      throw InputError(path_.string() + ": sentencepiece normalizer '" + normalizer_ +
                       "' is not supported (only 'identity', as used by Llama-family models)");
    if (whitespace_suffix_) throw InputError(path_.string() + ": treat_whitespace_as_suffix is not supported");
  }

  Token special_token(int32_t id, size_t at) const {
    Token t;
    t.id = id;
    t.text = pieces_[static_cast<size_t>(id)].text;
    t.begin = t.end = at;
    t.special = true;
    return t;
  }

  // Normalises text as sentencepiece does with the identity rule: optional removal of
  // leading/trailing/repeated spaces, a dummy-prefix space, spaces made visible as U+2581.
  // n2o maps each normalised byte (and the end) to its offset in the original text.
  void normalize(std::string_view text, std::string& norm, std::vector<size_t>& n2o) const {
    size_t b = 0, e = text.size();
    if (remove_extra_whitespaces_) {
      while (b < e && text[b] == ' ') ++b;
      while (e > b && text[e - 1] == ' ') --e;
    }
    if (b == e) return;
    auto emit_space = [&](size_t orig) {
      if (escape_whitespaces_) {
        norm += kSpace;
        n2o.insert(n2o.end(), 3, orig);
      } else {
        norm += ' ';
        n2o.push_back(orig);
      }
    };
    if (add_dummy_prefix_) emit_space(b);
    for (size_t i = b; i < e; ++i) {
      if (text[i] == ' ') {
        if (remove_extra_whitespaces_ && i > b && text[i - 1] == ' ') continue;
        emit_space(i);
      } else {
        norm += text[i];
        n2o.push_back(i);
      }
    }
    n2o.push_back(e);
  }

  void encode_segment(std::string_view text, size_t base, Encoding& enc) const {
    std::string norm;
    std::vector<size_t> n2o;
    normalize(text, norm, n2o);
    if (norm.empty()) return;

    // Initial symbols: user-defined pieces matched whole (longest first), else one character.
    struct Sym {
      size_t begin, end;  // byte range in norm
      int prev, next;
      bool alive;
    };
    std::vector<Sym> syms;
    for (size_t i = 0; i < norm.size();) {
      size_t len = 0;
      for (auto id : user_defined_) {
        const auto& t = pieces_[static_cast<size_t>(id)].text;
        if (t.size() > len && std::string_view(norm).substr(i, t.size()) == t) len = t.size();
      }
      if (!len) len = utf8_valid_len(norm, i);
      syms.push_back({i, i + len, static_cast<int>(syms.size()) - 1, static_cast<int>(syms.size()) + 1, true});
      i += len;
    }
    syms.back().next = -1;

    auto lookup = [&](size_t b, size_t e) -> int32_t {
      auto it = by_text_.find(std::string_view(norm).substr(b, e - b));
      return it == by_text_.end() ? -1 : it->second;
    };
    struct Pair {
      float score;
      int left, right;
      size_t size;  // merged length, to detect stale entries
    };
    auto worse = [](const Pair& a, const Pair& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    auto push = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      auto id = lookup(syms[static_cast<size_t>(l)].begin, syms[static_cast<size_t>(r)].end);
      if (id < 0) return;
      agenda.push({pieces_[static_cast<size_t>(id)].score, l, r,
                   syms[static_cast<size_t>(r)].end - syms[static_cast<size_t>(l)].begin});
    };
    for (size_t i = 1; i < syms.size(); ++i) push(static_cast<int>(i) - 1, static_cast<int>(i));

    while (!agenda.empty()) {
      auto top = agenda.top();
      agenda.pop();
      auto& L = syms[static_cast<size_t>(top.left)];
      auto& R = syms[static_cast<size_t>(top.right)];
      if (!L.alive || !R.alive || L.next != top.right || R.end - L.begin != top.size) continue;  // stale
      std::string_view whole = std::string_view(norm).substr(L.begin, R.end - L.begin);
      if (auto id = lookup(L.begin, R.end); id >= 0 && pieces_[static_cast<size_t>(id)].type == PieceType::unused)
        rev_merge[whole] = {std::string_view(norm).substr(L.begin, L.end - L.begin),
                            std::string_view(norm).substr(R.begin, R.end - R.begin)};
      L.end = R.end;
      L.next = R.next;
      R.alive = false;
      if (R.next >= 0) syms[static_cast<size_t>(R.next)].prev = top.left;
      push(L.prev, top.left);
      push(top.left, L.next);
    }

    // Emit symbols: known pieces directly, unused ones split back, unknown ones as bytes.
    auto emit_range = [&](auto&& self, size_t b, size_t e) -> void {
      std::string_view s = std::string_view(norm).substr(b, e - b);
      auto it = by_text_.find(s);
      if (it != by_text_.end() && pieces_[static_cast<size_t>(it->second)].type != PieceType::unused) {
        push_token(enc, it->second, base + n2o[b], base + n2o[e]);
        return;
      }
      if (auto rm = rev_merge.find(s); rm != rev_merge.end()) {
        self(self, b, b + rm->second.first.size());
        self(self, b + rm->second.first.size(), e);
        return;
      }
      if (byte_fallback_) {
        for (size_t k = b; k < e; ++k) {
          auto id = byte_ids_[static_cast<unsigned char>(norm[k])];
          if (id < 0) throw InputError(path_.string() + ": byte-fallback piece missing for a byte");
          push_token(enc, id, base + n2o[k], base + n2o[k + 1]);
        }
      } else if (unk_) {
        push_token(enc, *unk_, base + n2o[b], base + n2o[e]);
      } else {
        throw InputError(path_.string() + ": text contains a character the tokenizer cannot represent");
      }
    };
    for (int i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next)
      emit_range(emit_range, syms[static_cast<size_t>(i)].begin, syms[static_cast<size_t>(i)].end);
  }

  void push_token(Encoding& enc, int32_t id, size_t begin, size_t end) const {
    Token t;
    t.id = id;
    t.text = pieces_[static_cast<size_t>(id)].text;
    t.begin = begin;
    t.end = end;
    enc.tokens.push_back(std::move(t));
  }

  std::filesystem::path path_;
  std::vector<Piece> pieces_;
  std::unordered_map<std::string_view, int32_t> by_text_;  // views into pieces_ (never resized after)
  std::vector<int32_t> user_defined_;
  std::array<int32_t, 256> byte_ids_ = [] {
    std::array<int32_t, 256> a;
    a.fill(-1);
    return a;
  }();
  bool byte_fallback_ = false, whitespace_suffix_ = false;
  std::string normalizer_;
  bool has_charsmap_ = false, add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
  std::string unk_surface_ = " \xE2\x81\x87 ";
  int32_t bos_default_ = 1, eos_default_ = 2, pad_default_ = -1;
  bool add_bos_ = true, add_eos_ = false;
  std::optional<int32_t> bos_, eos_, pad_, unk_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file, const TokenizerConfig& cfg) {
  if (!std::filesystem::exists(model_file)) throw InputError(model_file.string() + ": no such tokenizer file");
  return std::make_unique<SentencePieceTokenizer>(model_file, cfg);
}

std::vector<SentencePieceEntry> read_sentencepiece_pieces(const std::filesystem::path& model_file) {
  const std::string data = read_file(model_file);
  ProtoReader r(data, model_file);
  std::vector<SentencePieceEntry> out;
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field != 1 || wire != 2) {
      r.skip(wire);
      continue;
    }
    Piece p = parse_piece(r.bytes(), model_file);
    out.push_back({std::move(p.text), p.score, static_cast<int>(p.type)});
  }
  if (out.empty()) throw InputError(model_file.string() + ": sentencepiece model has no pieces");
  return out;
}

}  // namespace pizza
