#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <limits>

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
  // Compiled PCRE2_ANCHORED: each_match tries start positions itself (see there).
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  bool jit = false;
  std::string origin;
};

Regex::Regex(std::string_view pattern, bool literal, std::string_view origin)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  // PCRE2 rejects UCP together with LITERAL (it has no classes to apply it to).
  uint32_t options = PCRE2_UTF | PCRE2_ANCHORED | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  impl_->origin = origin;
  const std::string compiled = literal ? std::string(pattern) : with_unicode_whitespace(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                                  options, &err, &err_off, nullptr));
  if (!impl_->code) {
    throw InputError(std::string(origin) + ": pre-tokenizer regex does not compile at offset " +
                     std::to_string(err_off) + " (" + pcre2_message(err) + "): " + compiled);
  }
  // JIT is an optimisation only: fall back to the interpreter where it is unavailable. Windows
  // that end before the text does are matched with PCRE2_PARTIAL_HARD (see each_match).
  impl_->jit =
      pcre2_jit_compile(impl_->code.get(), PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD) == 0;
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

// Bounded matching. Patterns come from tokenizer files, and PCRE2's match limit bounds neither
// forward scans (a possessive \p{L}++ is not counted) nor the work of one search call over many
// start positions (the limit restarts at each), so `\p{L}+\d|.` on n letters scanned n^2/2
// bytes, and `(?:a|a)*c|.` on runs of 16 a's spent 65536 steps at every position. Instead every
// attempt is anchored at one start position and sees only a window of the text: it starts
// kFirstWindow bytes past the start and grows fourfold while the attempt runs into the window's
// end (PCRE2_PARTIAL_HARD reports that, so a complete match or a no-match inside the window is
// exactly what the whole text gives) or out of steps: an attempt may take kStepsPerWindowByte
// steps per window byte plus kBaseSteps (fourfold again, once the window holds the rest of the
// text). Each attempt is charged its window plus its step limit, used or not, and one call may
// be charged kWorkPerByte per byte of its text. Real patterns look a few bytes past their match
// and backtrack little (their worst case, a sparse pattern tried at every position, is charged
// about 220 per byte), so only one that rescans the rest of the text or backtracks far from
// position after position runs out: linear work, a few microseconds per byte at worst.
namespace {
constexpr size_t kFirstWindow = 32;
constexpr uint64_t kStepsPerWindowByte = 4;
constexpr uint64_t kBaseSteps = 64;
constexpr uint64_t kWorkPerByte = 1024;
}  // namespace

template <class F>
void Regex::each_match(std::string_view text, RegexScratch& scratch, F&& f) const {
  pcre2_code* code = impl_->code.get();
  pcre2_match_data* md = scratch.impl_->md.get();
  pcre2_match_context* mctx = scratch.impl_->mctx.get();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const uint64_t budget = kWorkPerByte * (static_cast<uint64_t>(text.size()) + 1);
  uint64_t charged = 0;
  auto refuse = [&](const std::string& why) {
    throw InputError(impl_->origin + ": regex '" + pattern_ + "' " + why + " (on a " +
                     std::to_string(text.size()) + "-byte text); refusing the text");
  };
  auto next_char = [&](size_t p) {
    ++p;
    while (p < text.size() && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) ++p;
    return p;
  };
  size_t pos = 0;  // the start position tried next
  while (pos < text.size()) {
    int rc = 0;
    size_t window = kFirstWindow;
    uint64_t steps = kBaseSteps + kStepsPerWindowByte * window;
    for (;;) {
      const size_t end = text.size() - pos <= window ? text.size() : pos + window;
      charged += (end - pos) + steps;
      if (charged > budget) {
        refuse("backtracks or rescans the text from position after position: more than " +
               std::to_string(kWorkPerByte) + " steps and bytes per byte of the text spent by byte offset " +
               std::to_string(pos));
      }
      const uint32_t options = PCRE2_NO_UTF_CHECK | (end < text.size() ? PCRE2_PARTIAL_HARD : 0);
      pcre2_set_match_limit(mctx, static_cast<uint32_t>(std::min<uint64_t>(steps, std::numeric_limits<uint32_t>::max())));
      rc = impl_->jit ? pcre2_jit_match(code, subject, end, pos, options, md, mctx)
                      : pcre2_match(code, subject, end, pos, options, md, mctx);
      const bool exhausted = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
                             rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT;
      if (end < text.size() && (rc == PCRE2_ERROR_PARTIAL || exhausted)) {
        window *= 4;
        steps = kBaseSteps + kStepsPerWindowByte * window;
      } else if (exhausted) {
        steps *= 4;
      } else {
        break;
      }
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
      pos = next_char(pos);
      continue;
    }
    if (rc < 0) refuse("failed on the text (" + pcre2_message(rc) + ")");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t mb = ov[0], me = ov[1];
    if (me <= mb) {
      // An empty match splits nothing; step over one UTF-8 character and search on.
      pos = next_char(pos);
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
