// Byte-level BPE throughput: encodes a text file, or N MB of deterministic synthetic text,
// with a tokenizer.json and prints bytes, tokens, seconds and tokens/s.
//   bench_tokenizer_gpt2 <tokenizer.json> <text file | size in MB>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <string_view>

#include "tokenizer/bpe.h"
#include "util/file.h"

namespace {

// English-like words, punctuation, digits, whitespace and some non-Latin text, chosen by a
// fixed-seed mt19937 (whose output sequence the standard fixes), so every run encodes the
// same bytes.
std::string synthesize(size_t bytes) {
  static constexpr std::string_view kWords[] = {
      "the",         "of",        "and",      "to",       "in",       "is",
      "was",         "that",      "for",      "it",       "with",     "as",
      "his",         "on",        "be",       "at",       "by",       "had",
      "attribution", "tokenizer", "language", "model",    "gradient", "saliency",
      "Once",        "upon",      "a",        "time",     "little",   "girl",
      "named",       "Lily",      "don't",    "we'll",    "I'm",      "naïve",
      "café",        "résumé",    "Ünïcödé",  "日本語",   "テキスト", "中文",
      "Привет",      "мир",       "😀",        "👍🏽", "x**2",     "https://example.com/a?b=c"};
  static constexpr std::string_view kPunct[] = {".",  ",",  "!", "?", ";",  ":",
                                                " -", " —", "(", ")", "\"", "'"};
  std::mt19937 rng(20240501);
  std::string out;
  out.reserve(bytes + 64);
  while (out.size() < bytes) {
    uint32_t r = rng();
    if (r % 23 == 0) {
      out += std::to_string(rng() % 100000);
    } else {
      out += kWords[r % std::size(kWords)];
    }
    uint32_t s = rng() % 40;
    if (s < 4) out += kPunct[s * 3 % std::size(kPunct)];
    if (s == 5) out += "\n";
    if (s == 6) out += "\n\n    ";
    out += ' ';
  }
  // Cut at a character boundary so the text stays valid UTF-8.
  size_t cut = bytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <tokenizer.json> <text file | size in MB>\n", argv[0]);
    return 2;
  }
  try {
    auto tok = pizza::load_hf_tokenizer_json(argv[1]);
    std::string text;
    char* end = nullptr;
    double mb = std::strtod(argv[2], &end);
    if (end != argv[2] && *end == '\0' && mb > 0) {
      text = synthesize(static_cast<size_t>(mb * 1024 * 1024));
    } else {
      text = pizza::read_file(argv[2]);
    }
    pizza::EncodeOptions opts;
    opts.add_special_tokens = false;
    auto t0 = std::chrono::steady_clock::now();
    auto enc = tok->encode(text, opts);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("bytes %zu\ntokens %zu\nseconds %.4f\ntokens/s %.0f\n", text.size(),
                enc.tokens.size(), secs, static_cast<double>(enc.tokens.size()) / secs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
