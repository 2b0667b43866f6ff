#include "tokenizer/normalize.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include <algorithm>

#include "util/error.h"

namespace pizza {

NormalizedText NormalizedText::identity(std::string_view original, size_t base) {
  NormalizedText t;
  t.text.assign(original);
  t.align.resize(original.size());
  for (size_t i = 0; i < original.size(); ++i) t.align[i] = {base + i, base + i + 1};
  t.end = base + original.size();
  return t;
}

ByteRange NormalizedText::original(size_t b, size_t e) const {
  if (b >= e) {
    const size_t at = b < align.size() ? align[b].begin : end;
    return {at, at};
  }
  return {align[b].begin, std::max(align[b].begin, align[e - 1].end)};
}

namespace {

// Builds a new NormalizedText from pieces of an old one: kept bytes keep their alignment,
// replacement bytes all stand for the original range of what they replace.
class Rebuild {
 public:
  explicit Rebuild(const NormalizedText& in) : in_(in) {
    out_.end = in.end;
    out_.text.reserve(in.text.size());
    out_.align.reserve(in.text.size());
  }
  void keep(size_t b, size_t e) {
    out_.text.append(in_.text, b, e - b);
    out_.align.insert(out_.align.end(), in_.align.begin() + static_cast<ptrdiff_t>(b),
                      in_.align.begin() + static_cast<ptrdiff_t>(e));
  }
  void replace(size_t b, size_t e, std::string_view with) {
    const ByteRange r = in_.original(b, e);
    out_.text.append(with);
    out_.align.insert(out_.align.end(), with.size(), r);
  }
  NormalizedText take() { return std::move(out_); }

 private:
  const NormalizedText& in_;
  NormalizedText out_;
};

[[noreturn]] void icu_failure(const char* what, UErrorCode status) {
  throw InputError(std::string("Unicode normalisation failed (") + what + ": " +
                   u_errorName(status) + ")");
}

// One ICU UTF conversion (u_strFromUTF8 / u_strToUTF8) into a buffer of `capacity` units.
template <class Out, class In, class Convert>
Out icu_convert(In s, size_t capacity, Convert convert, const char* name) {
  Out out(capacity, {});
  int32_t len = 0;
  UErrorCode st = U_ZERO_ERROR;
  convert(out.data(), static_cast<int32_t>(out.size()), &len, s.data(), static_cast<int32_t>(s.size()), &st);
  if (U_FAILURE(st)) icu_failure(name, st);
  out.resize(static_cast<size_t>(len));
  return out;
}

std::u16string to_utf16(std::string_view s) {
  // UTF-16 never needs more units than UTF-8 has bytes.
  return icu_convert<std::u16string>(s, s.size(), u_strFromUTF8, "u_strFromUTF8");
}

std::string to_utf8(std::u16string_view s) {
  // At most 3 bytes per UTF-16 unit.
  return icu_convert<std::string>(s, s.size() * 3, u_strToUTF8, "u_strToUTF8");
}

const UNormalizer2* icu_instance(NormalizeStep::Kind kind) {
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (kind) {
    case NormalizeStep::Kind::kNfc: n = unorm2_getNFCInstance(&st); break;
    case NormalizeStep::Kind::kNfd: n = unorm2_getNFDInstance(&st); break;
    case NormalizeStep::Kind::kNfkc: n = unorm2_getNFKCInstance(&st); break;
    default: n = unorm2_getNFKDInstance(&st); break;
  }
  if (U_FAILURE(st)) icu_failure("unorm2_get*Instance", st);
  return n;
}

std::u16string icu_normalize(const UNormalizer2* n, std::u16string_view in) {
  std::u16string out(in.size() * 4 + 8, u'\0');
  for (;;) {
    UErrorCode st = U_ZERO_ERROR;
    int32_t len = unorm2_normalize(n, in.data(), static_cast<int32_t>(in.size()), out.data(),
                                   static_cast<int32_t>(out.size()), &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(static_cast<size_t>(len), u'\0');
      continue;
    }
    if (U_FAILURE(st)) icu_failure("unorm2_normalize", st);
    out.resize(static_cast<size_t>(len));
    return out;
  }
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Calls f(begin, end, code point) for each character of valid UTF-8 `s`.
template <class F>
void each_char(std::string_view s, F&& f) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    const int32_t b = i;
    UChar32 c = 0;
    U8_NEXT(p, i, n, c);
    f(static_cast<size_t>(b), static_cast<size_t>(i), c);
  }
}

// Normalises `t` one normalisation-independent stretch at a time: ICU's hasBoundaryBefore
// marks where text can be cut without changing the result, so each stretch (a base character
// with its combining marks, a Hangul syllable's jamo) maps to its own output, and only
// stretches that change lose their byte-level alignment.
void unicode_normalize(NormalizeStep::Kind kind, NormalizedText& t) {
  if (is_ascii(t.text)) return;  // ASCII is the same in every normalisation form
  const UNormalizer2* n = icu_instance(kind);
  const std::u16string whole = to_utf16(t.text);
  UErrorCode st = U_ZERO_ERROR;
  const int32_t yes = unorm2_spanQuickCheckYes(n, whole.data(), static_cast<int32_t>(whole.size()), &st);
  if (U_FAILURE(st)) icu_failure("unorm2_spanQuickCheckYes", st);
  if (yes == static_cast<int32_t>(whole.size())) return;

  Rebuild out(t);
  auto flush = [&](size_t b, size_t e) {
    if (b >= e) return;
    std::string_view chunk = std::string_view(t.text).substr(b, e - b);
    if (is_ascii(chunk)) return out.keep(b, e);
    std::string norm = to_utf8(icu_normalize(n, to_utf16(chunk)));
    if (norm == chunk) return out.keep(b, e);
    out.replace(b, e, norm);
  };
  size_t start = 0;
  each_char(t.text, [&](size_t b, size_t, UChar32 c) {
    if (b > start && unorm2_hasBoundaryBefore(n, c)) {
      flush(start, b);
      start = b;
    }
  });
  flush(start, t.text.size());
  t = out.take();
}

// Per character, as HF does (Rust's char::to_lowercase, full mappings, no context).
void lowercase(NormalizedText& t) {
  Rebuild out(t);
  each_char(t.text, [&](size_t b, size_t e, UChar32 c) {
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') return out.replace(b, e, std::string(1, static_cast<char>(c - 'A' + 'a')));
      return out.keep(b, e);
    }
    std::u16string in = to_utf16(std::string_view(t.text).substr(b, e - b));
    char16_t buf[16];
    UErrorCode st = U_ZERO_ERROR;
    int32_t len = u_strToLower(buf, 16, in.data(), static_cast<int32_t>(in.size()), "", &st);
    if (U_FAILURE(st)) icu_failure("u_strToLower", st);
    std::string lower = to_utf8(std::u16string_view(buf, static_cast<size_t>(len)));
    if (lower == std::string_view(t.text).substr(b, e - b)) return out.keep(b, e);
    out.replace(b, e, lower);
  });
  t = out.take();
}

// Unicode White_Space at either end, as Rust's char::is_whitespace.
void strip(NormalizedText& t, bool left, bool right) {
  size_t first = t.text.size(), last = 0;  // bytes from the first to the last non-space
  each_char(t.text, [&](size_t b, size_t e, UChar32 c) {
    if (u_hasBinaryProperty(c, UCHAR_WHITE_SPACE)) return;
    first = std::min(first, b);
    last = e;
  });
  // Whitespace only: first == size, last == 0, so stripping either side leaves nothing.
  const size_t b = left ? first : 0, e = right ? last : t.text.size();
  if (b == 0 && e == t.text.size()) return;
  Rebuild out(t);
  out.keep(b, std::max(b, e));
  t = out.take();
}

}  // namespace

void apply_normalize_step(const NormalizeStep& step, NormalizedText& t, RegexScratch& scratch) {
  using K = NormalizeStep::Kind;
  switch (step.kind) {
    case K::kNfc:
    case K::kNfd:
    case K::kNfkc:
    case K::kNfkd: return unicode_normalize(step.kind, t);
    case K::kLowercase: return lowercase(t);
    case K::kStrip: return strip(t, step.left, step.right);
    case K::kPrepend: {
      if (t.text.empty()) return;  // HF prepends only to non-empty text
      Rebuild out(t);
      out.replace(0, 0, step.text);
      out.keep(0, t.text.size());
      t = out.take();
      return;
    }
    case K::kReplace: {
      std::vector<ByteRange> found;
      step.pattern->matches(t.text, 0, found, scratch);
      if (found.empty()) return;
      Rebuild out(t);
      size_t pos = 0;
      for (const auto& m : found) {
        out.keep(pos, m.begin);
        out.replace(m.begin, m.end, step.text);
        pos = m.end;
      }
      out.keep(pos, t.text.size());
      t = out.take();
      return;
    }
  }
}

std::string replace_all(std::string_view s, const Regex& pattern, std::string_view with,
                        RegexScratch& scratch) {
  std::vector<ByteRange> found;
  pattern.matches(s, 0, found, scratch);
  std::string out;
  size_t pos = 0;
  for (const auto& m : found) {
    out.append(s.substr(pos, m.begin - pos));
    out.append(with);
    pos = m.end;
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace pizza
