// A sentencepiece *unigram* model with the nmt_nfkc normaliser, byte fallback and a dummy
// prefix (../shared/tokenizers/unigram_nfkc), against the sentencepiece library's own output
// recorded in ../shared/reference/tokenizers/unigram_nfkc.jsonl: ids, pieces, spans, decoding.
// pizza's own code never implemented unigram or nmt_nfkc: these pass only through the library.
//
// The reference spans were written by the library's Python wrapper, which converts them to
// code-point offsets (ConvertToUnicodeSpans); pizza works in bytes, so the test maps the
// reference's code-point offsets to byte offsets of the same text before comparing.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <fstream>
#include <string>
#include <vector>

#include "support/paths.h"
#include "test_util.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer.h"

using namespace pizza;

namespace {

struct RefPiece {
  int32_t id;
  std::string piece;
  size_t begin, end;  // bytes
};

struct RefLine {
  std::string text, decoded;
  std::vector<int32_t> ids;
  std::vector<RefPiece> pieces;
};

// Byte offset of every code point of s (and of its end), so code-point offset k -> bytes[k].
std::vector<size_t> code_point_offsets(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  out.push_back(s.size());
  return out;
}

std::vector<RefLine> reference() {
  std::ifstream in(test::shared("reference/tokenizers/unigram_nfkc.jsonl"));
  simdjson::dom::parser parser;
  std::vector<RefLine> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    simdjson::dom::element doc = parser.parse(line);
    RefLine l;
    l.text = std::string(std::string_view(doc["text"]));
    l.decoded = std::string(std::string_view(doc["decoded"]));
    for (int64_t id : doc["ids"].get_array()) l.ids.push_back(static_cast<int32_t>(id));
    const auto cp = code_point_offsets(l.text);
    for (auto p : doc["pieces"].get_array()) {
      const auto b = static_cast<size_t>(int64_t(p["begin"])), e = static_cast<size_t>(int64_t(p["end"]));
      REQUIRE(b < cp.size());
      REQUIRE(e < cp.size());
      l.pieces.push_back({static_cast<int32_t>(int64_t(p["id"])), std::string(std::string_view(p["piece"])), cp[b], cp[e]});
    }
    out.push_back(std::move(l));
  }
  REQUIRE(out.size() >= 10);
  return out;
}

std::unique_ptr<Tokenizer> unigram() { return load_tokenizer(test::shared("tokenizers/unigram_nfkc/tokenizer.model")); }

EncodeOptions no_special() {
  EncodeOptions o;
  o.add_special_tokens = false;
  return o;
}

}  // namespace

TEST_CASE("sentencepiece unigram: ids and pieces equal the library's reference", "[tokenizer][sentencepiece][unigram]") {
  auto tok = unigram();
  CHECK(tok->vocab_size() == 800);
  for (const auto& l : reference()) {
    INFO("text: " << l.text);
    auto enc = tok->encode(l.text, no_special());
    CHECK(enc.ids() == l.ids);
    REQUIRE(enc.tokens.size() == l.pieces.size());
    for (size_t i = 0; i < l.pieces.size(); ++i) CHECK(enc.tokens[i].text == l.pieces[i].piece);
  }
}

TEST_CASE("sentencepiece unigram: spans are the library's piece offsets", "[tokenizer][sentencepiece][unigram][spans]") {
  // Each token ends where the library's piece ends (zero-width pieces such as the dummy prefix
  // stay zero-width), with the adjustments tokenizer.h promises and the library does not make:
  // spans are contiguous (bytes the normaliser dropped, such as a leading space, go to the next
  // token), the last token runs to the end of the text (dropped trailing whitespace), and the
  // <0xNN> pieces of one character get one byte each (the library gives the whole character to
  // the last of them).
  auto tok = unigram();
  size_t byte_runs = 0;
  for (const auto& l : reference()) {
    if (l.pieces.empty()) continue;
    INFO("text: " << l.text);
    auto enc = tok->encode(l.text, no_special());
    REQUIRE(enc.tokens.size() == l.pieces.size());
    for (size_t i = 0; i < l.pieces.size();) {
      const bool byte = test::is_byte_piece(*tok, l.pieces[i].id);
      if (!byte) {
        INFO("piece " << i << " " << l.pieces[i].piece);
        if (i + 1 == l.pieces.size()) CHECK(enc.tokens[i].end == l.text.size());
        else if (l.pieces[i].begin == l.pieces[i].end) CHECK(enc.tokens[i].end == enc.tokens[i].begin);
        else CHECK(enc.tokens[i].end == l.pieces[i].end);
        ++i;
        continue;
      }
      size_t j = i;
      while (j < l.pieces.size() && test::is_byte_piece(*tok, l.pieces[j].id)) ++j;
      ++byte_runs;
      for (size_t k = i; k < j; ++k) {
        INFO("byte piece " << k << " " << l.pieces[k].piece);
        CHECK(enc.tokens[k].end == enc.tokens[k].begin + 1);
      }
      CHECK(enc.tokens[j - 1].end == l.pieces[j - 1].end);
      i = j;
    }
    test::check_spans(*tok, l.text);
  }
  CHECK(byte_runs >= 3);  // the reference exercises byte fallback (emoji, ✓, CJK)
}

TEST_CASE("sentencepiece unigram: decoding equals the library's reference", "[tokenizer][sentencepiece][unigram][decode]") {
  auto tok = unigram();
  for (const auto& l : reference()) {
    INFO("text: " << l.text);
    CHECK(tok->decode(l.ids) == l.decoded);
  }
  // nmt_nfkc at work: fullwidth letters come back as ASCII, so decode(encode(x)) != x here.
  CHECK(tok->decode(tok->encode("\xEF\xBC\xA6\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C", no_special()).ids()) == "Full");
}
