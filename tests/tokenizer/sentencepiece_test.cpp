// Sentencepiece BPE (Llama 2's 32000-piece tokenizer.model and stories260K's 512-piece
// tok512) against reference encodings from ../shared, plus the byte-span contract of
// tokenizer.h on every reference string.
//
// Which properties hold for which model (both use the "identity" normaliser):
//  - Llama 2 (remove_extra_whitespaces = false): every token's span is exactly the bytes the
//    token stands for, except that the first piece's dummy-prefix space is not in the text;
//    decode(encode(x)) == x for every string.
//  - tok512 (llama2.c's train_vocab: remove_extra_whitespaces = true, sentencepiece's default):
//    leading/trailing spaces are dropped and runs of spaces collapse to one before encoding, so
//    decode(encode(x)) == x with that normalisation applied; spans still concatenate to x
//    exactly (dropped spaces are absorbed by a neighbouring token).

#include <catch2/catch.hpp>
#include <algorithm>
#include <future>
#include <string>
#include <vector>

#include "support/paths.h"
#include "test_util.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace pizza;

namespace {

std::unique_ptr<Tokenizer> llama2() { return load_sentencepiece(test::shared("tokenizers/llama2/tokenizer.model")); }
std::unique_ptr<Tokenizer> tok512() { return load_tokenizer(test::shared("models/stories260K")); }

using test::check_spans;
using test::is_byte_piece;

std::vector<test::ReferenceLine> read_jsonl(const std::filesystem::path& file, const char* ids_key) {
  return test::read_reference_jsonl(file, ids_key);
}

// Every reference string of every ../shared/reference/tokenizers/*.jsonl file.
std::vector<std::string> all_reference_texts() {
  std::vector<std::string> texts;
  for (const char* name : {"llama2", "gpt2", "cl100k_base", "o200k_base"})
    for (auto& l : read_jsonl(test::shared(std::string("reference/tokenizers/") + name + ".jsonl"), "ids"))
      texts.push_back(std::move(l.text));
  REQUIRE(texts.size() >= 50);
  return texts;
}

// What tok512's normaliser does to spaces: strip leading/trailing ones, collapse runs.
std::string collapse_spaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::vector<int32_t> ids_of(const Tokenizer& tok, const std::string& text) { return tok.encode(text).ids(); }

}  // namespace

TEST_CASE("sentencepiece: llama2 tokenizer reproduces llama2.c's reference ids", "[tokenizer][sentencepiece]") {
  auto tok = llama2();
  CHECK(tok->vocab_size() == 32000);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  auto lines = read_jsonl(test::shared("reference/tokenizers/llama2.jsonl"), "ids_with_bos");
  CHECK(lines.size() == 5);
  for (const auto& l : lines) {
    INFO("text: " << l.text);
    REQUIRE(!l.ids.empty());
    CHECK(ids_of(*tok, l.text) == l.ids);
    // Without special tokens: the same ids minus BOS.
    EncodeOptions no_bos;
    no_bos.add_special_tokens = false;
    CHECK(tok->encode(l.text, no_bos).ids() == std::vector<int32_t>(l.ids.begin() + 1, l.ids.end()));
  }
}

TEST_CASE("sentencepiece: tok512 from the stories260K directory", "[tokenizer][sentencepiece]") {
  auto tok = tok512();
  CHECK(tok->vocab_size() == 512);
  // ../shared/reference/stories260K/reference_outputs.json, first tokenization entry.
  CHECK(ids_of(*tok, "Once upon a time") == std::vector<int32_t>{1, 403, 407, 261, 378});
  CHECK(tok->describe().find("tokenizer.model") != std::string::npos);
}

TEST_CASE("sentencepiece: byte spans concatenate to the input (llama2)", "[tokenizer][sentencepiece][spans]") {
  auto tok = llama2();
  for (const auto& text : all_reference_texts()) check_spans(*tok, text);
}

TEST_CASE("sentencepiece: byte spans concatenate to the input (tok512)", "[tokenizer][sentencepiece][spans]") {
  auto tok = tok512();
  for (const auto& text : all_reference_texts()) check_spans(*tok, text);
}

TEST_CASE("sentencepiece: llama2 spans are each token's own bytes", "[tokenizer][sentencepiece][spans]") {
  // Llama 2 keeps every space, so a token's span is exactly what it decodes to in context,
  // except the dummy-prefix space of the first piece, which is not in the text.
  auto tok = llama2();
  for (const auto& text : all_reference_texts()) {
    INFO("text: " << text);
    bool first = true;
    for (const auto& t : tok->encode(text).tokens) {
      if (t.special) continue;
      auto expect = tok->token_bytes(t.id);
      if (first && !expect.empty() && expect[0] == ' ') expect.erase(0, 1);
      first = false;
      INFO("token " << t.id << " '" << t.text << "'");
      CHECK(text.substr(t.begin, t.end - t.begin) == expect);
    }
  }
}

TEST_CASE("sentencepiece: decode(encode(x)) == x (llama2)", "[tokenizer][sentencepiece][decode]") {
  auto tok = llama2();
  for (const auto& text : all_reference_texts()) {
    INFO("text: " << text);
    auto ids = ids_of(*tok, text);
    CHECK(tok->decode(ids) == text);
  }
}

TEST_CASE("sentencepiece: decode(encode(x)) == x up to space collapsing (tok512)", "[tokenizer][sentencepiece][decode]") {
  auto tok = tok512();
  for (const auto& text : all_reference_texts()) {
    INFO("text: " << text);
    CHECK(tok->decode(ids_of(*tok, text)) == collapse_spaces(text));
  }
  // Concretely: the leading/trailing spaces are gone and the double space is one.
  CHECK(tok->decode(ids_of(*tok, "  a  b  ")) == "a b");
  CHECK(ids_of(*tok, "  a  b  ") == ids_of(*tok, "a b"));
  // Spaces only normalise to nothing: BOS alone, which then covers the text.
  auto spaces = tok->encode("   ");
  REQUIRE(spaces.ids() == std::vector<int32_t>{1});
  CHECK(spaces.tokens[0].begin == 0);
  CHECK(spaces.tokens[0].end == 3);
  // Dropped trailing spaces go to the last real token, not to a following special token.
  auto a = tok->encode("a  ");
  CHECK(a.tokens.back().end == 3);
  CHECK_FALSE(a.tokens.back().special);
  TokenizerConfig with_eos;
  with_eos.add_eos_token = true;
  auto eos_tok = load_sentencepiece(test::shared("models/stories260K/tokenizer.model"), with_eos);
  auto ae = eos_tok->encode("a  ");
  REQUIRE(ae.ids() == std::vector<int32_t>{1, ids_of(*tok, "a").at(1), 2});
  CHECK(ae.tokens[1].end == 3);
  CHECK(ae.tokens[2].begin == 3);
  CHECK(ae.tokens[2].end == 3);
}

TEST_CASE("sentencepiece: byte-fallback tokens get one byte each", "[tokenizer][sentencepiece][spans]") {
  // "日" is E6 97 A5 in UTF-8 and "😀" is F0 9F 98 80; tok512 has neither as a piece, so each
  // becomes byte pieces <0xE6> <0x97> <0xA5> ..., one byte of the text per token.
  auto tok = tok512();
  const std::string text = "\xE6\x97\xA5\xF0\x9F\x98\x80";
  auto enc = tok->encode(text);
  std::vector<std::string> pieces;
  for (const auto& t : enc.tokens) pieces.push_back(t.text);
  // BOS, the dummy-prefix "▁" (a piece of its own, covering no text), then 7 byte pieces.
  REQUIRE(pieces == std::vector<std::string>{"<s>", "\xE2\x96\x81", "<0xE6>", "<0x97>", "<0xA5>", "<0xF0>", "<0x9F>",
                                             "<0x98>", "<0x80>"});
  for (size_t k = 2; k < enc.tokens.size(); ++k) {
    CHECK(enc.tokens[k].begin == k - 2);
    CHECK(enc.tokens[k].end == k - 1);
  }
  CHECK(enc.tokens[1].begin == 0);
  CHECK(enc.tokens[1].end == 0);
  CHECK(tok->decode(enc.ids()) == text);

  // In llama2, CJK characters missing from the vocabulary fall back the same way.
  auto l2 = llama2();
  for (const auto& t : l2->encode("日本語のテキストと中文文本").tokens)
    if (is_byte_piece(*l2, t.id)) CHECK(t.end - t.begin == 1);
}

TEST_CASE("sentencepiece: decode of invalid ids and partial characters", "[tokenizer][sentencepiece][decode]") {
  auto tok = tok512();
  std::vector<int32_t> bad{1, 512};
  CHECK_THROWS_WITH(tok->decode(bad), Catch::Contains("token id 512 is outside the vocabulary"));
  // A lone continuation byte is not valid UTF-8: decoded as U+FFFD, as sentencepiece does.
  auto enc = tok->encode("\xE6\x97\xA5");
  auto ids = enc.ids();
  std::vector<int32_t> partial(ids.begin(), ids.end() - 1);  // drop the last byte of "日"
  CHECK(tok->decode(partial) == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("sentencepiece: invalid UTF-8 bytes become U+FFFD, as the library does", "[tokenizer][sentencepiece][spans]") {
  // "\xC3" announces a 2-byte character but is followed by a space, and "\xFF" is never valid.
  // The sentencepiece library's normaliser replaces each invalid byte with U+FFFD, which tok512
  // (no such piece) encodes as its three byte pieces EF BF BD; the space stays a space. The
  // three pieces share the one original byte (the first two empty, the last covering it), so
  // spans still concatenate to the input.
  auto tok = tok512();
  const std::string text = "caf\xC3 x\xFF";
  auto enc = tok->encode(text);
  std::vector<std::string> pieces;
  for (const auto& t : enc.tokens) pieces.push_back(t.text);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xC3>") == 0);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xFF>") == 0);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xEF>") == 2);
  CHECK(std::count(pieces.begin(), pieces.end(), "<0xBD>") == 2);
  size_t pos = 0;
  std::string joined;
  for (const auto& t : enc.tokens) {
    CHECK(t.begin == pos);
    joined += text.substr(t.begin, t.end - t.begin);
    pos = t.end;
  }
  CHECK(joined == text);
  CHECK(tok->decode(enc.ids()) == "caf\xEF\xBF\xBD x\xEF\xBF\xBD");
}

namespace {

// Protocol-buffer wire format, just enough to write a sentencepiece ModelProto by hand.
std::string varint(uint64_t v) {
  std::string out;
  do {
    out += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return out;
}
std::string field_bytes(int field, const std::string& bytes) { return varint(static_cast<uint64_t>(field) << 3 | 2) + varint(bytes.size()) + bytes; }
std::string field_varint(int field, uint64_t v) { return varint(static_cast<uint64_t>(field) << 3) + varint(v); }
std::string field_float(int field, float f) {
  std::string out = varint(static_cast<uint64_t>(field) << 3 | 5);
  out.append(reinterpret_cast<const char*>(&f), 4);
  return out;
}
// SentencePiece {piece = 1, score = 2, type = 3}
std::string piece(const std::string& text, float score, int type) {
  return field_bytes(1, field_bytes(1, text) + field_float(2, score) + field_varint(3, static_cast<uint64_t>(type)));
}

}  // namespace

TEST_CASE("sentencepiece: a model whose BOS piece is empty never loops", "[tokenizer][sentencepiece][bad-input]") {
  // Pieces: <unk>, an empty BOS (control), </s>, ▁, a. Encoding with parse_special (what pizza
  // serve does at start-up to find the chat template's markers) used to search the text for
  // the empty BOS forever. Now the library refuses the model (a clear InputError), or, should
  // it accept it, the empty special token matches nowhere.
  const std::string model = piece("<unk>", 0, 2) + piece("", 0, 3) + piece("</s>", 0, 3) + piece("\xE2\x96\x81", -1, 1) +
                            piece("a", -2, 1) + field_bytes(3, field_bytes(1, "identity"));
  test::TempDir dir;
  test::write_file(dir / "tokenizer.model", model);
  auto run = std::async(std::launch::async, [&]() -> std::string {
    try {
      auto tok = load_sentencepiece(dir / "tokenizer.model");
      EncodeOptions o;
      o.parse_special = true;
      return "encoded " + std::to_string(tok->encode("a a", o).tokens.size()) + " tokens";
    } catch (const InputError& e) {
      return e.what();
    }
  });
  REQUIRE(run.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  const auto outcome = run.get();
  INFO(outcome);
  CHECK((outcome.rfind("encoded ", 0) == 0 || outcome.find((dir / "tokenizer.model").string()) != std::string::npos));
}
