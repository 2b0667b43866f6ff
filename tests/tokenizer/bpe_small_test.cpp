// Byte-level BPE on tiny hand-written tokenizer files, where every expected id is worked out
// by hand, plus the errors bad files and bad input must raise.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "support/paths.h"
#include "test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/pretokenize.h"
#include "util/error.h"

namespace {

using Catch::Matchers::Contains;

using pizza::test::byte_char;
using pizza::test::json_string;

void write(const std::filesystem::path& p, const std::string& s) { pizza::test::write_file(p, s); }

// Ids 0..255 are the bytes themselves (id == byte value); then ab=256, bc=257, abc=258,
// aa=259. Merge ranks: "b c" 0, "a b" 1, "a bc" 2, "a a" 3.
std::string vocab_json() {
  std::string v = "{";
  for (unsigned b = 0; b < 256; ++b) v += json_string(byte_char(b)) + ":" + std::to_string(b) + ",";
  return v + R"("ab":256,"bc":257,"abc":258,"aa":259})";
}

std::string tokenizer_json(bool pair_merges) {
  std::string merges = pair_merges ? R"([["b","c"],["a","b"],["a","bc"],["a","a"]])"
                                   : R"(["b c","a b","a bc","a a"])";
  return R"({"version":"1.0","normalizer":null,
    "added_tokens":[{"id":300,"content":"<s>","special":true},
                    {"id":301,"content":"<x>","special":false}],
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
    "post_processor":{"type":"TemplateProcessing",
      "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
      "pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[300],"tokens":["<s>"]}}},
    "decoder":{"type":"ByteLevel"},
    "model":{"type":"BPE","vocab":)" +
         vocab_json() + R"(,"merges":)" + merges + "}}";
}

// The message of the InputError `f` throws; fails the test when it throws nothing (any other
// exception type escapes and fails it too).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const pizza::InputError& e) {
    return e.what();
  }
  FAIL("no InputError thrown");
  return {};
}

std::vector<int32_t> ids_of(const pizza::Encoding& e) {
  std::vector<int32_t> ids;
  for (const auto& t : e.tokens) ids.push_back(t.id);
  return ids;
}

}  // namespace

TEST_CASE("bpe: merges follow rank order, not position", "[bpe]") {
  pizza::test::TempDir dir;
  for (bool pairs : {false, true}) {
    INFO("merges as " << (pairs ? "[a,b] pairs" : "\"a b\" strings"));
    write(dir / "tokenizer.json", tokenizer_json(pairs));
    pizza::TokenizerConfig cfg;
    cfg.add_bos_token = false;
    auto tok = pizza::load_hf_tokenizer_json(dir / "tokenizer.json", cfg);
    // "abc" gets a prefix space: " abc". Pairs (a,b) rank 1 and (b,c) rank 0: "b c" merges
    // first, then "a bc" -> [' ', abc] = [32, 258]. Merging left to right would give ab, c.
    CHECK(ids_of(tok->encode("abc")) == std::vector<int32_t>{32, 258});
    // Equal ranks: the leftmost "a a" merges first: " aaa" -> [' ', aa, a] = [32, 259, 97].
    CHECK(ids_of(tok->encode("aaa")) == std::vector<int32_t>{32, 259, 97});
    CHECK(tok->vocab_size() == 302);
    CHECK(tok->piece(32) == "\xC4\xA0");  // "Ġ"
  }
}

TEST_CASE("bpe: prefix space, template BOS and added tokens", "[bpe]") {
  pizza::test::TempDir dir;
  write(dir / "tokenizer.json", tokenizer_json(false));
  auto tok = pizza::load_hf_tokenizer_json(dir / "tokenizer.json");
  CHECK(tok->bos_id() == 300);

  // BOS from the template, then " ab" -> [' ', ab]. The prefix space is not in the text, so
  // its token covers nothing; BOS covers nothing either.
  auto enc = tok->encode("ab");
  REQUIRE(ids_of(enc) == std::vector<int32_t>{300, 32, 256});
  CHECK(enc.tokens[0].special);
  CHECK((enc.tokens[0].begin == 0 && enc.tokens[0].end == 0));
  CHECK((enc.tokens[1].begin == 0 && enc.tokens[1].end == 0));
  CHECK((enc.tokens[2].begin == 0 && enc.tokens[2].end == 2));
  CHECK(enc.tokens[2].text == "ab");
  CHECK(tok->decode(ids_of(enc)) == " ab");

  // The non-special added token "<x>" is split out even without parse_special; each side
  // gets its own prefix space: " a", <x>, " b". The special "<s>" stays text unless asked.
  pizza::EncodeOptions no_bos;
  no_bos.add_special_tokens = false;
  auto added = tok->encode("a<x>b", no_bos);
  CHECK(ids_of(added) == std::vector<int32_t>{32, 97, 301, 32, 98});
  CHECK((added.tokens[2].begin == 1 && added.tokens[2].end == 4));
  CHECK_FALSE(added.tokens[2].special);
  // "<s>" as text: " <s>" is one GPT-2 regex piece of non-letters -> bytes ' ', '<', 's', '>'.
  CHECK(ids_of(tok->encode("<s>", no_bos)) == std::vector<int32_t>{32, 60, 115, 62});
  no_bos.parse_special = true;
  CHECK(ids_of(tok->encode("<s>", no_bos)) == std::vector<int32_t>{300});

  pizza::TokenizerConfig cfg;
  cfg.add_bos_token = false;
  CHECK(ids_of(pizza::load_hf_tokenizer_json(dir / "tokenizer.json", cfg)->encode("ab")) ==
        std::vector<int32_t>{32, 256});
}

TEST_CASE("bpe: decode replaces invalid UTF-8 like Hugging Face", "[bpe]") {
  pizza::test::TempDir dir;
  write(dir / "tokenizer.json", tokenizer_json(false));
  auto tok = pizza::load_hf_tokenizer_json(dir / "tokenizer.json");
  const std::string fffd = "\xEF\xBF\xBD";
  // Ids equal byte values here. 0xC3 alone is a truncated 2-byte sequence; E2 82 is the
  // maximal prefix of a 3-byte one, so it becomes a single U+FFFD.
  CHECK(tok->decode(std::vector<int32_t>{0xC3}) == fffd);
  CHECK(tok->decode(std::vector<int32_t>{0xC3, 'A'}) == fffd + "A");
  CHECK(tok->decode(std::vector<int32_t>{0xE2, 0x82, 'x'}) == fffd + "x");
  CHECK(tok->decode(std::vector<int32_t>{0xC3, 0xA9}) == "\xC3\xA9");
  CHECK_THROWS_AS(tok->decode(std::vector<int32_t>{5000}), pizza::InputError);
  CHECK_THROWS_AS(tok->encode("bad \xFF byte"), pizza::InputError);
}

TEST_CASE("bpe: bad files raise InputError naming the file", "[bpe]") {
  pizza::test::TempDir dir;
  const auto missing = (dir / "missing.json").string();
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(missing); }), Contains(missing));
  CHECK_THAT(input_error([&] { pizza::load_gpt2_vocab_merges(missing, dir / "merges.txt"); }),
             Contains(missing));
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(missing, "cl100k_base"); }), Contains(missing));

  const auto unigram = (dir / "unigram.json").string();
  write(unigram, R"({"model":{"type":"Unigram","vocab":[["a",0.0]]}})");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(unigram); }),
             Contains(unigram) && Contains("Unigram"));

  const auto not_json = (dir / "broken.json").string();
  write(not_json, "{\"model\": ");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(not_json); }), Contains(not_json));

  const auto vocab = (dir / "vocab.json").string();
  const auto merges = (dir / "merges.txt").string();
  write(vocab, vocab_json());
  write(merges, "#version: 0.2\nb c\nabc\n");
  CHECK_THAT(input_error([&] { pizza::load_gpt2_vocab_merges(vocab, merges); }),
             Contains(merges + ":3"));
  write(merges, "b c\nx y\n");  // "x y" merges into "xy", which is not in the vocabulary
  CHECK_THAT(input_error([&] { pizza::load_gpt2_vocab_merges(vocab, merges); }),
             Contains(merges + ":2"));
  write(merges, "b c\na b\n");
  CHECK(pizza::load_gpt2_vocab_merges(vocab, merges)->encode("abc").tokens.size() == 2);

  const auto ranks = (dir / "bad.tiktoken").string();
  write(ranks, "IQ== 0\nIg== 1\n!!not-base64 2\n");
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "cl100k_base"); }),
             Contains(ranks + ":3"));
  write(ranks, "IQ== 0\nIg== x\n");
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "cl100k_base"); }),
             Contains(ranks + ":2"));
  // A rank file without all 256 single bytes cannot encode arbitrary text.
  write(ranks, "IQ== 0\nIg== 1\n");
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "cl100k_base"); }), Contains(ranks));
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "nope_base"); }), Contains("nope_base"));
}

TEST_CASE("bpe: token ids far beyond the file's token count are refused before they size anything", "[bpe]") {
  // A table slot per id up to the largest: an id of 2^30 in a file of three tokens used to
  // allocate gigabytes (or end in a bare std::bad_alloc naming no file).
  pizza::test::TempDir dir;
  const auto json = (dir / "tokenizer.json").string();
  write(json, R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":1073741824},"merges":["a b"]}})");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(json); }), Contains(json) && Contains("1073741824"));
  write(json, R"({"added_tokens":[{"id":1073741824,"content":"<big>","special":true}],)"
              R"("model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]}})");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(json); }), Contains(json) && Contains("<big>"));
  const auto vocab = (dir / "vocab.json").string();
  write(vocab, R"({"a":0,"b":536870912})");
  write(dir / "merges.txt", "");
  CHECK_THAT(input_error([&] { pizza::load_gpt2_vocab_merges(vocab, dir / "merges.txt"); }), Contains(vocab));
  const auto ranks = (dir / "big.tiktoken").string();
  write(ranks, "IQ== 0\nIg== 1073741824\n");
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "cl100k_base"); }), Contains(ranks + ":2") && Contains("beyond"));
  // Small gaps stay legal (tiktoken's specials sit a few ids past its ranks; this file's "b" is
  // id 5 among three tokens).
  write(json, R"({"model":{"type":"BPE","vocab":{"a":0,"b":5,"ab":2},"merges":["a b"]}})");
  CHECK(pizza::load_hf_tokenizer_json(json)->encode("ab").tokens.size() == 1);
}

TEST_CASE("bpe: pre-tokenizer regexes split as the Rust engines do", "[bpe]") {
  auto split = [](std::string_view pattern, std::string_view text) {
    pizza::Regex re(pattern, false, "test");
    pizza::RegexScratch scratch;
    std::vector<pizza::ByteRange> ranges;
    re.split(text, 0, ranges, scratch);
    std::vector<std::string> pieces;
    for (const auto& r : ranges) pieces.emplace_back(text.substr(r.begin, r.end - r.begin));
    return pieces;
  };
  using V = std::vector<std::string>;
  namespace p = pizza::pretokenize_patterns;
  // \s+(?!\S) leaves the last space of a run to the following word.
  CHECK(split(p::kGpt2, "a   b") == V{"a", "  ", " b"});
  // U+180E MONGOLIAN VOWEL SEPARATOR left Unicode's White_Space in 6.3: it is punctuation-like
  // ([^\s\p{L}\p{N}]) for tiktoken/HF, so it joins the "!" after it.
  CHECK(split(p::kGpt2, "a\xE1\xA0\x8E!") == V{"a", "\xE1\xA0\x8E!"});
  // cl100k: case-insensitive contractions and digits in groups of at most three.
  CHECK(split(p::kCl100k, "IT'S 12345") == V{"IT", "'S", " ", "123", "45"});
  // o200k: the first alternative takes upper* lower+ greedily ("HTTPServer" whole), and a
  // contraction stays attached to its word.
  CHECK(split(p::kO200k, "HTTPServer don't") == V{"HTTPServer", " don't"});
  // A literal (HF Split {"String": ...}) matches verbatim, regex characters included.
  pizza::Regex lit(".", true, "test");
  pizza::RegexScratch scratch;
  std::vector<pizza::ByteRange> ranges;
  lit.split("a.b", 0, ranges, scratch);
  REQUIRE(ranges.size() == 3);
  CHECK((ranges[1].begin == 1 && ranges[1].end == 2));
}

TEST_CASE("bpe: a token longer than any real one is refused by every loader", "[bpe]") {
  // tiktoken's merge table is derived from every split point of every token, so loading took
  // time quadratic in one token's length: a 400 KB token in a rank file took 15 s.
  pizza::test::TempDir dir;
  const std::string huge(64 * 1024, 'a');
  const std::string at_limit(pizza::kMaxTokenBytes, 'a');
  auto base64 = [](const std::string& bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < bytes.size(); i += 3) {
      uint32_t v = 0;
      const size_t n = std::min<size_t>(3, bytes.size() - i);
      for (size_t k = 0; k < 3; ++k)
        v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
      for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
  };
  std::string byte_ranks;
  for (unsigned b = 0; b < 256; ++b)
    byte_ranks += base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(b) + "\n";
  const auto ranks = (dir / "long.tiktoken").string();
  write(ranks, byte_ranks + base64(huge) + " 256\n");
  CHECK_THAT(input_error([&] { pizza::load_tiktoken(ranks, "cl100k_base"); }),
             Contains(ranks + ":257") && Contains("65536 bytes long"));
  // A token as long as the limit still loads (and is found whole: tiktoken ignores merges).
  write(ranks, byte_ranks + base64(at_limit) + " 256\n");
  CHECK(ids_of(pizza::load_tiktoken(ranks, "cl100k_base")->encode(at_limit)) == std::vector<int32_t>{256});

  const auto json = (dir / "tokenizer.json").string();
  write(json, R"({"model":{"type":"BPE","vocab":{"a":0,)" + json_string(huge) + ":1}}}");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(json); }),
             Contains(json) && Contains("model.vocab") && Contains("65536 bytes long"));
  write(json, R"({"added_tokens":[{"id":1,"content":)" + json_string(huge) +
                  R"(,"special":true}],"model":{"type":"BPE","vocab":{"a":0},"merges":[]}})");
  CHECK_THAT(input_error([&] { pizza::load_hf_tokenizer_json(json); }),
             Contains(json) && Contains("added_tokens.content"));
  const auto vocab = (dir / "vocab.json").string();
  write(vocab, R"({"a":0,)" + json_string(huge) + ":1}");
  write(dir / "merges.txt", "");
  CHECK_THAT(input_error([&] { pizza::load_gpt2_vocab_merges(vocab, dir / "merges.txt"); }),
             Contains(vocab) && Contains("65536 bytes long"));
}

TEST_CASE("bpe: a pre-tokenizer regex that rescans the rest of the text is refused naming the file", "[bpe]") {
  // PCRE2's match limit restarts at every call and every start position and does not count
  // possessive scans, so \p{L}+\d|. (which scans to the end of a run of letters from every
  // letter before matching one) took time quadratic in the text: 6 s on 100 KB, 24 s on 200 KB.
  pizza::test::TempDir dir;
  const auto json = (dir / "tokenizer.json").string();
  write(json, R"({"pre_tokenizer":{"type":"Sequence","pretokenizers":[)"
              R"({"type":"Split","pattern":{"Regex":"\\p{L}+\\d|."},"behavior":"Isolated","invert":false},)"
              R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},)"
              R"("model":{"type":"BPE","vocab":)" + vocab_json() + R"(,"merges":["b c","a b","a bc","a a"]}})");
  auto tok = pizza::load_hf_tokenizer_json(json);
  // Short texts, and digits that end the letter run early, are fine.
  CHECK(ids_of(tok->encode("ab1c", {.add_special_tokens = false})) == std::vector<int32_t>{256, '1', 'c'});
  const std::string letters(100 * 1000, 'x');
  CHECK_THAT(input_error([&] { tok->encode(letters, {.add_special_tokens = false}); }),
             Contains(json) && Contains("\\p{L}+\\d|.") && Contains("100000-byte text"));

  // Exponential backtracking is refused with the same context (PCRE2's own limit used to stop
  // it with a message naming neither file nor pattern)...
  pizza::Regex nested("(?:a+)+$|b", false, "nested.json");
  pizza::RegexScratch scratch;
  std::vector<pizza::ByteRange> ranges;
  CHECK_THAT(input_error([&] { nested.split(std::string(64, 'a') + "b", 0, ranges, scratch); }),
             Contains("nested.json") && Contains("backtracks"));
  // ... and so is bounded backtracking repeated at every position, which PCRE2's per-call limit
  // let through: 2^16 steps at each of 100000 positions took over 15 s.
  pizza::Regex repeated("(?:a|a)*c|.", false, "repeated.json");
  std::string runs;
  while (runs.size() < 100 * 1000) runs += std::string(16, 'a') + "x";
  CHECK_THAT(input_error([&] { repeated.split(runs, 0, ranges, scratch); }),
             Contains("repeated.json") && Contains("position after position"));

  // Real patterns on long runs need only a few bytes scanned per byte: a megabyte of spaces,
  // of letters or of digits splits as before.
  pizza::Regex cl100k(pizza::pretokenize_patterns::kCl100k, false, "cl100k");
  for (const char c : {' ', 'x', '7', '\n'}) {
    ranges.clear();
    const std::string run = std::string(1 << 20, c) + "!";
    cl100k.split(run, 0, ranges, scratch);
    CHECK(ranges.size() >= 2);
    CHECK(ranges.back().end == run.size());
  }
}
