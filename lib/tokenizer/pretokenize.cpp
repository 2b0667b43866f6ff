#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

namespace pizza {
namespace {

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* c) const { pcre2_match_context_free(c); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Unicode's current White_Space set. PCRE2 10.42 still counts U+180E (dropped from
// White_Space in Unicode 6.3) as \s, while the Rust regex engines behind tiktoken and HF
// tokenizers do not; spelling the set out makes \s and \S agree with them.
constexpr std::string_view kWhiteSpace =
    R"(\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S to kWhiteSpace: [set] / [^set] outside a character class, the bare set
// inside one (\S inside a class has no such spelling and keeps PCRE2's meaning).
std::string with_unicode_whitespace(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    out += c;
    if (!in_class && c == '[') {
      in_class = true;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
    } else if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      size_t close = pattern.find(":]", i + 2);  // POSIX class such as [:alpha:]
      if (close != std::string_view::npos) {
        out.append(pattern.substr(i + 1, close + 2 - (i + 1)));
        i = close + 1;
      }
    } else if (in_class && c == ']') {
      in_class = false;
    }
  }
  return out;
}

}  // namespace

struct Regex::Impl {
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  bool jit = false;
};

Regex::Regex(std::string_view pattern, bool literal, std::string_view origin)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  // PCRE2 rejects UCP together with LITERAL (it has no classes to apply it to).
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  const std::string compiled = literal ? std::string(pattern) : with_unicode_whitespace(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                                  options, &err, &err_off, nullptr));
  if (!impl_->code) {
    throw InputError(std::string(origin) + ": pre-tokenizer regex does not compile at offset " +
                     std::to_string(err_off) + " (" + pcre2_message(err) + "): " + compiled);
  }
  // JIT is an optimisation only: fall back to the interpreter where it is unavailable.
  impl_->jit = pcre2_jit_compile(impl_->code.get(), PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

struct RegexScratch::Impl {
  // One ovector pair is enough: only the whole match is used (rc 0 then means "match").
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md{pcre2_match_data_create(1, nullptr)};
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> mctx{
      pcre2_match_context_create(nullptr)};
  // Long whitespace runs backtrack deeply under \s+(?!\S); allow more than JIT's 32 KiB
  // default stack.
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> stack{
      pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr)};
  Impl() { pcre2_jit_stack_assign(mctx.get(), nullptr, stack.get()); }
};

RegexScratch::RegexScratch() : impl_(std::make_unique<Impl>()) {}
RegexScratch::~RegexScratch() = default;

template <class F>
void Regex::each_match(std::string_view text, RegexScratch& scratch, F&& f) const {
  pcre2_code* code = impl_->code.get();
  pcre2_match_data* md = scratch.impl_->md.get();
  pcre2_match_context* mctx = scratch.impl_->mctx.get();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;  // where the next search starts
  while (pos < text.size()) {
    int rc = impl_->jit
                 ? pcre2_jit_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, mctx)
                 : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw InputError("regex failed on the input text (" + pcre2_message(rc) + "): " + pattern_);
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t mb = ov[0], me = ov[1];
    if (me == mb) {
      // An empty match splits nothing; step over one UTF-8 character and search on.
      pos = mb + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    f(mb, me);
    pos = me;
  }
}

void Regex::matches(std::string_view text, size_t base, std::vector<ByteRange>& out,
                    RegexScratch& scratch) const {
  each_match(text, scratch, [&](size_t b, size_t e) { out.push_back({base + b, base + e}); });
}

void Regex::split(std::string_view text, size_t base, std::vector<ByteRange>& out,
                  RegexScratch& scratch) const {
  size_t piece = 0;  // start of text not yet emitted
  each_match(text, scratch, [&](size_t b, size_t e) {
    if (b > piece) out.push_back({base + piece, base + b});
    out.push_back({base + b, base + e});
    piece = e;
  });
  if (piece < text.size()) out.push_back({base + piece, base + text.size()});
}

}  // namespace pizza
