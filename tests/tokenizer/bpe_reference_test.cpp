// Byte-level BPE against the official tiktoken library's ids (../shared/reference/tokenizers,
// computed by tiktoken 1.0.22; the GPT-2 ids also equal Hugging Face tokenizers' output).

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/paths.h"
#include "test_util.h"
#include "tokenizer/bpe.h"

namespace {

std::vector<pizza::test::ReferenceLine> read_cases(const std::string& rel) {
  auto cases = pizza::test::read_reference_jsonl(pizza::test::shared(rel), "ids", 10);
  for (const auto& c : cases) REQUIRE(!c.ids.empty());
  return cases;
}

// Checks ids, spans (contiguous, covering the text, each the token's own bytes), the display
// text and the decode round trip for every reference line.
void check_reference(const pizza::Tokenizer& tok, const std::string& rel) {
  for (const auto& c : read_cases(rel)) {
    INFO("text: " << c.text);
    pizza::EncodeOptions opts;
    opts.add_special_tokens = false;
    auto enc = tok.encode(c.text, opts);
    std::vector<int32_t> ids;
    size_t pos = 0;
    std::string joined;
    for (const auto& t : enc.tokens) {
      ids.push_back(t.id);
      CHECK(t.begin == pos);
      CHECK(t.end >= t.begin);
      pos = t.end;
      CHECK(c.text.substr(t.begin, t.end - t.begin) == tok.token_bytes(t.id));
      CHECK(t.text == tok.piece(t.id));
      CHECK_FALSE(t.special);
      joined += c.text.substr(t.begin, t.end - t.begin);
    }
    CHECK(pos == c.text.size());
    CHECK(joined == c.text);
    CHECK(ids == c.ids);
    CHECK(tok.decode(ids) == c.text);
  }
}

}  // namespace

TEST_CASE("bpe: gpt2 tokenizer.json reproduces reference ids", "[bpe]") {
  auto tok = pizza::load_hf_tokenizer_json(pizza::test::shared("tokenizers/gpt2/tokenizer.json"));
  check_reference(*tok, "reference/tokenizers/gpt2.jsonl");
  CHECK(tok->vocab_size() == 50257);
  CHECK(tok->eos_id() == 50256);
  CHECK(tok->is_special(50256));
  CHECK_FALSE(tok->is_special(995));
  // GPT-2's vocabulary spells " world" (id 995 in the reference line "Hello world") as "Ġworld".
  CHECK(tok->piece(995) == "\xC4\xA0world");
  CHECK(tok->token_bytes(995) == " world");
}

TEST_CASE("bpe: gpt2 vocab.json + merges.txt reproduce reference ids", "[bpe]") {
  auto tok = pizza::load_gpt2_vocab_merges(pizza::test::shared("tokenizers/gpt2/vocab.json"),
                                           pizza::test::shared("tokenizers/gpt2/merges.txt"));
  check_reference(*tok, "reference/tokenizers/gpt2.jsonl");
  CHECK(tok->vocab_size() == 50257);
  CHECK(tok->eos_id() == 50256);
}

TEST_CASE("bpe: tiktoken cl100k_base reproduces reference ids", "[bpe][tiktoken]") {
  auto tok = pizza::load_tiktoken(pizza::test::shared("tokenizers/tiktoken/cl100k_base.tiktoken"),
                                  "cl100k_base");
  check_reference(*tok, "reference/tokenizers/cl100k_base.jsonl");
  // Largest special token id is <|endofprompt|> 100276.
  CHECK(tok->vocab_size() == 100277);
  CHECK(tok->eos_id() == 100257);
}

TEST_CASE("bpe: tiktoken o200k_base reproduces reference ids", "[bpe][tiktoken]") {
  auto tok = pizza::load_tiktoken(pizza::test::shared("tokenizers/tiktoken/o200k_base.tiktoken"),
                                  "o200k_base");
  check_reference(*tok, "reference/tokenizers/o200k_base.jsonl");
  CHECK(tok->vocab_size() == 200019);
  CHECK(tok->eos_id() == 199999);
}

TEST_CASE("bpe: special tokens are parsed only when asked", "[bpe]") {
  auto tok = pizza::load_hf_tokenizer_json(pizza::test::shared("tokenizers/gpt2/tokenizer.json"));
  const std::string text = "a<|endoftext|>b";
  pizza::EncodeOptions opts;
  opts.parse_special = true;
  auto enc = tok->encode(text, opts);
  // GPT-2 numbers the printable ASCII bytes from '!' = 0, so 'a' = 97 - 33 = 64, 'b' = 65.
  REQUIRE(enc.tokens.size() == 3);
  CHECK(enc.tokens[0].id == 64);
  CHECK(enc.tokens[1].id == 50256);
  CHECK(enc.tokens[1].special);
  CHECK(enc.tokens[1].text == "<|endoftext|>");
  CHECK(enc.tokens[1].begin == 1);
  CHECK(enc.tokens[1].end == 14);
  CHECK(enc.tokens[2].id == 65);
  std::vector<int32_t> ids{64, 50256, 65};
  CHECK(tok->decode(ids) == "ab");
  CHECK(tok->decode(ids, false) == text);

  opts.parse_special = false;
  auto plain = tok->encode(text, opts);
  CHECK(plain.tokens.size() > 3);
  std::vector<int32_t> plain_ids;
  for (const auto& t : plain.tokens) {
    CHECK(t.id != 50256);
    plain_ids.push_back(t.id);
  }
  CHECK(tok->decode(plain_ids) == text);
}

TEST_CASE("bpe: tiktoken special tokens", "[bpe][tiktoken]") {
  auto tok = pizza::load_tiktoken(pizza::test::shared("tokenizers/tiktoken/cl100k_base.tiktoken"),
                                  "cl100k_base");
  pizza::EncodeOptions opts;
  opts.parse_special = true;
  auto enc = tok->encode("<|fim_prefix|><|endoftext|><|endofprompt|>", opts);
  REQUIRE(enc.tokens.size() == 3);
  CHECK(enc.tokens[0].id == 100258);
  CHECK(enc.tokens[1].id == 100257);
  CHECK(enc.tokens[2].id == 100276);
  CHECK(tok->token_bytes(100257).empty());
  CHECK(pizza::looks_like_tiktoken_name("o200k_base"));
  CHECK_FALSE(pizza::looks_like_tiktoken_name("llama"));
}

TEST_CASE("bpe: long and repetitive inputs stay consistent", "[bpe]") {
  auto tok = pizza::load_hf_tokenizer_json(pizza::test::shared("tokenizers/gpt2/tokenizer.json"));
  // A long whitespace run exercises the \s+(?!\S) backtracking; a long unbroken word the merge
  // heap; both must round-trip and keep contiguous spans.
  std::string text = std::string(5000, ' ') + "x" + std::string(3000, 'a') + "\n\n";
  auto enc = tok->encode(text);
  std::vector<int32_t> ids;
  size_t pos = 0;
  for (const auto& t : enc.tokens) {
    CHECK(t.begin == pos);
    pos = t.end;
    ids.push_back(t.id);
  }
  CHECK(pos == text.size());
  CHECK(tok->decode(ids) == text);
}
