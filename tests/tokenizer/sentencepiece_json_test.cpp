// Sentencepiece-style tokenizer.json (what transformers writes for Llama-2 / Mistral / Gemma:
// Prepend+Replace normaliser or Metaspace pre-tokenizer, BPE with byte_fallback) and the
// tokenizer.json normalisers. The llama2 files are converted from ../shared's tokenizer.model
// by spm_to_hf_json (test support written from transformers' converter's rules) and must give
// the reference ids of ../shared/reference/tokenizers/llama2.jsonl.
#include <catch2/catch.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "spm_to_hf_json.h"
#include "support/paths.h"
#include "test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace pizza;
using Catch::Matchers::Contains;

namespace {

std::filesystem::path llama2_model() { return test::shared("tokenizers/llama2/tokenizer.model"); }

std::vector<test::ReferenceLine> llama2_lines() {
  auto lines = test::read_reference_jsonl(test::shared("reference/tokenizers/llama2.jsonl"), "ids_with_bos", 5);
  for (const auto& l : lines) REQUIRE(!l.ids.empty());
  return lines;
}

// Writes the converted file as <dir>/<name>/tokenizer.json (a directory holding only it).
std::filesystem::path convert(const test::TempDir& dir, const std::string& name, const test::SpmJsonStyle& style) {
  auto sub = dir / name;
  std::filesystem::create_directories(sub);
  test::write_file(sub / "tokenizer.json", test::spm_to_hf_json(llama2_model(), style));
  return sub;
}

bool has_byte_piece(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  return std::any_of(ids.begin(), ids.end(), [&](int32_t id) { return test::is_byte_piece(tok, id); });
}

// Reference ids (with and without BOS), spans and, where the decoder can give the text back,
// the decode round trip.
void check_against_reference(const Tokenizer& tok, bool byte_fallback_decoder) {
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.vocab_size() == 32000);
  for (const auto& l : llama2_lines()) {
    INFO("text: " << l.text);
    CHECK(tok.encode(l.text).ids() == l.ids);
    EncodeOptions no_bos;
    no_bos.add_special_tokens = false;
    CHECK(tok.encode(l.text, no_bos).ids() == std::vector<int32_t>(l.ids.begin() + 1, l.ids.end()));
    test::check_spans(tok, l.text);
    if (byte_fallback_decoder || !has_byte_piece(tok, l.ids)) CHECK(tok.decode(l.ids) == l.text);
  }
}

// Strings beyond the reference file: emoji, CJK, rare and combining characters, control
// characters and runs of spaces, to exercise byte fallback and whitespace pieces.
const std::vector<std::string>& extra_texts() {
  static const std::vector<std::string> texts{
      "Hello \xF0\x9F\x98\x80 world \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88 \xE4\xB8\xAD\xE6\x96\x87",
      "\xF0\x93\x80\x80 hieroglyph, \xE2\x88\xAE integral, \xEA\xAF\x8D meetei",
      "tab\there\r\nand  two   spaces    end ",
      "e\xCC\x81 decomposed vs \xC3\xA9 composed",
      "x",
      "\x01\x7F control",
  };
  return texts;
}

}  // namespace

TEST_CASE("sentencepiece json: Prepend/Replace normaliser file reproduces llama2 reference ids",
          "[tokenizer][sentencepiece_json]") {
  test::TempDir dir;
  auto sub = convert(dir, "prepend", {.metaspace = false});
  // As a file and as a directory that holds only tokenizer.json.
  for (const auto& path : {sub / "tokenizer.json", sub}) {
    INFO("loaded from " << path.string());
    auto tok = load_tokenizer(path);
    CHECK(tok->describe().find("tokenizer.json") != std::string::npos);
    check_against_reference(*tok, true);
  }
}

TEST_CASE("sentencepiece json: Metaspace pre-tokenizer files reproduce llama2 reference ids",
          "[tokenizer][sentencepiece_json]") {
  test::TempDir dir;
  SECTION("prepend_scheme first, no split, ByteFallback decoder (Mistral-style)") {
    auto sub = convert(dir, "first", {.metaspace = true, .prepend_scheme = "first", .split = false});
    for (const auto& path : {sub / "tokenizer.json", sub}) check_against_reference(*load_tokenizer(path), true);
  }
  SECTION("add_prefix_space, Metaspace decoder, no post-processor (older files)") {
    auto sub = convert(dir, "legacy",
                       {.metaspace = true, .prepend_scheme = "", .split = false, .metaspace_decoder = true,
                        .bos_template = false});
    auto tok = load_tokenizer(sub);
    check_against_reference(*tok, false);
    // A Metaspace decoder has no ByteFallback step, so (as in Hugging Face) byte pieces stay
    // as written: "a\nb" is ▁a <0x0A> b, decoded "a<0x0A>b".
    EncodeOptions no_bos;
    no_bos.add_special_tokens = false;
    auto ids = tok->encode("a\nb", no_bos).ids();
    REQUIRE(ids.size() == 3);
    CHECK(tok->piece(ids[1]) == "<0x0A>");
    CHECK(tok->decode(ids) == "a<0x0A>b");
  }
  SECTION("split = true (cuts before every ▁)") {
    // Splitting before each ▁ changes nothing for text without runs of spaces: Llama 2's
    // pieces with an inner ▁ are the whitespace runs "▁▁", "▁▁▁", ... only, which such text
    // never forms. So the reference ids hold for those lines.
    auto tok = load_tokenizer(convert(dir, "split", {.metaspace = true, .prepend_scheme = "always", .split = true}));
    size_t checked = 0;
    for (const auto& l : llama2_lines()) {
      if (l.text.find("  ") != std::string::npos) continue;
      INFO("text: " << l.text);
      CHECK(tok->encode(l.text).ids() == l.ids);
      ++checked;
    }
    CHECK(checked >= 3);
    // With a run of spaces each ▁ is cut off alone: "a  b" -> ▁a ▁ ▁b, while sentencepiece
    // (no split) gives ▁a ▁▁b... as the .model does.
    EncodeOptions no_bos;
    no_bos.add_special_tokens = false;
    std::vector<std::string> pieces;
    for (const auto& t : tok->encode("a  b", no_bos).tokens) pieces.push_back(t.text);
    CHECK(pieces == std::vector<std::string>{"\xE2\x96\x81" "a", "\xE2\x96\x81", "\xE2\x96\x81" "b"});
    test::check_spans(*tok, "a  b");
  }
}

TEST_CASE("sentencepiece json: agrees with tokenizer.model on byte-fallback text",
          "[tokenizer][sentencepiece_json]") {
  test::TempDir dir;
  auto reference = load_sentencepiece(llama2_model());
  for (const char* name : {"prepend", "first"}) {
    auto tok = load_tokenizer(convert(dir, name, {.metaspace = std::string(name) == "first"}));
    for (const auto& text : extra_texts()) {
      INFO(name << " text: " << text);
      auto want = reference->encode(text);
      auto got = tok->encode(text);
      CHECK(got.ids() == want.ids());
      REQUIRE(got.tokens.size() == want.tokens.size());
      for (size_t i = 0; i < got.tokens.size(); ++i) {
        CHECK(got.tokens[i].begin == want.tokens[i].begin);
        CHECK(got.tokens[i].end == want.tokens[i].end);
        CHECK(got.tokens[i].text == want.tokens[i].text);
        CHECK(tok->token_bytes(got.tokens[i].id) == reference->token_bytes(got.tokens[i].id));
      }
      test::check_spans(*tok, text);
      CHECK(tok->decode(got.ids()) == text);
    }
    // Byte fallback really happened: 😀 (F0 9F 98 80) is not a Llama 2 piece.
    CHECK(has_byte_piece(*tok, tok->encode(extra_texts()[0]).ids()));
  }
}

TEST_CASE("sentencepiece json: tokenizer.model wins in a directory holding both", "[tokenizer][sentencepiece_json]") {
  test::TempDir dir;
  auto sub = convert(dir, "both", {});
  std::filesystem::copy_file(llama2_model(), sub / "tokenizer.model");
  CHECK(load_tokenizer(sub)->describe().rfind("sentencepiece:", 0) == 0);
}

namespace {

std::string load_error(const std::filesystem::path& file) {
  try {
    load_tokenizer(file);
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("no InputError for " << file.string());
  return {};
}

// A tiny character-level tokenizer.json; `vocab` and the JSON fragments are spliced in.
std::string tiny_json(const std::string& vocab, const std::string& normalizer, const std::string& pre_tokenizer,
                      bool byte_fallback) {
  return R"({"normalizer":)" + normalizer + R"(,"pre_tokenizer":)" + pre_tokenizer +
         R"(,"decoder":null,"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":)" +
         (byte_fallback ? "true" : "false") + R"(,"vocab":{)" + vocab + R"(},"merges":[]}})";
}

}  // namespace

TEST_CASE("sentencepiece json: bad files give one-line InputErrors", "[tokenizer][sentencepiece_json]") {
  test::TempDir dir;
  const auto file = dir / "tokenizer.json";
  const std::string vocab = R"("<unk>":0,"a":1,"▁":2)";
  const std::string prepend = R"({"type":"Prepend","prepend":"▁"})";

  test::write_file(file, tiny_json(vocab, prepend, "null", true));
  auto msg = load_error(file);
  CHECK_THAT(msg, Contains(file.string()) && Contains("byte_fallback") && Contains("<0x00>"));
  CHECK(msg.find('\n') == std::string::npos);

  test::write_file(file, tiny_json(vocab, R"({"type":"BertNormalizer"})", "null", false));
  msg = load_error(file);
  CHECK_THAT(msg, Contains(file.string()) && Contains("normalizer 'BertNormalizer' is not supported"));
  CHECK(msg.find('\n') == std::string::npos);

  test::write_file(file, tiny_json(vocab, "null", R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"sometimes"})", false));
  msg = load_error(file);
  CHECK_THAT(msg, Contains(file.string()) && Contains("prepend_scheme") && Contains("sometimes"));
  CHECK(msg.find('\n') == std::string::npos);

  test::write_file(file, R"({"model":{"type":"BPE","unk_token":"<nope>","vocab":{"a":0},"merges":[]}})");
  CHECK_THAT(load_error(file), Contains("unk_token") && Contains("<nope>"));

  // Without byte fallback an unknown character becomes <unk>, consecutive ones fused into one.
  test::write_file(file, tiny_json(vocab, prepend, "null", false));
  auto tok = load_tokenizer(file);
  EncodeOptions no_bos;
  no_bos.add_special_tokens = false;
  auto enc = tok->encode("a\xC3\xA9\xC3\xA9" "a", no_bos);  // "aééa": ▁ a <unk> a
  CHECK(enc.ids() == std::vector<int32_t>{2, 1, 0, 1});
  test::check_spans(*tok, "a\xC3\xA9\xC3\xA9" "a");
  CHECK((enc.tokens[2].begin == 1 && enc.tokens[2].end == 5));
}

// ---- Unicode normalisers, through a tiny byte-level tokenizer.json --------------------------

namespace {

// Byte-level vocabulary: ids 0..255 are the bytes themselves, plus merged tokens
//   256 "é"  U+00E9 = C3 A9      (merge C3 + A9)
//   257 "Å"  U+00C5 = C3 85      (merge C3 + 85)
//   258 "가" U+AC00 = EA B0 80   (merges EA + B0 = 259, then 259 + 80)
// and no pre-tokenizer splitting (ByteLevel without its regex), so merges see the whole text.
std::string unicode_json(const std::string& normalizer) {
  using test::byte_char;
  std::string vocab;
  for (unsigned b = 0; b < 256; ++b) vocab += test::json_string(byte_char(b)) + ":" + std::to_string(b) + ",";
  const std::string e_acute = byte_char(0xC3) + byte_char(0xA9), a_ring = byte_char(0xC3) + byte_char(0x85);
  const std::string ga_head = byte_char(0xEA) + byte_char(0xB0), ga = ga_head + byte_char(0x80);
  vocab += test::json_string(e_acute) + ":256," + test::json_string(a_ring) + ":257," + test::json_string(ga) +
           ":258," + test::json_string(ga_head) + ":259";
  auto merge = [](const std::string& a, const std::string& b) {
    return "[" + test::json_string(a) + "," + test::json_string(b) + "]";
  };
  const std::string merges = merge(byte_char(0xC3), byte_char(0xA9)) + "," + merge(byte_char(0xC3), byte_char(0x85)) +
                             "," + merge(byte_char(0xEA), byte_char(0xB0)) + "," + merge(ga_head, byte_char(0x80));
  return R"({"normalizer":)" + normalizer +
         R"(,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":false},)"
         R"("decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{)" +
         vocab + R"(},"merges":[)" + merges + "]}}";
}

std::unique_ptr<Tokenizer> unicode_tokenizer(const test::TempDir& dir, const std::string& normalizer) {
  test::write_file(dir / "tokenizer.json", unicode_json(normalizer));
  return load_tokenizer(dir / "tokenizer.json");
}

std::vector<std::pair<size_t, size_t>> spans(const Encoding& e) {
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& t : e.tokens) out.emplace_back(t.begin, t.end);
  return out;
}

using Spans = std::vector<std::pair<size_t, size_t>>;
using Ids = std::vector<int32_t>;

}  // namespace

// Facts from the Unicode standard (UAX #15 and UnicodeData.txt), written by hand:
//  - "e" U+0065 + COMBINING ACUTE ACCENT U+0301 (65 CC 81) composes under NFC to U+00E9 (C3 A9);
//  - ANGSTROM SIGN U+212B (E2 84 AB) has the singleton canonical decomposition U+00C5 (C3 85);
//  - LATIN SMALL LIGATURE FI U+FB01 (EF AC 81) has only a compatibility decomposition: NFC
//    keeps it, NFKC makes it "fi";
//  - HANGUL CHOSEONG KIYEOK U+1100 (E1 84 80) + JUNGSEONG A U+1161 (E1 85 A1) compose to the
//    syllable U+AC00 (EA B0 80).
TEST_CASE("tokenizer json normalizers: NFC/NFKC/NFD are exact and keep original spans",
          "[tokenizer][normalizer]") {
  test::TempDir dir;
  SECTION("NFC") {
    auto tok = unicode_tokenizer(dir, R"({"type":"NFC"})");
    auto e = tok->encode("xe\xCC\x81y");
    CHECK(e.ids() == Ids{'x', 256, 'y'});
    CHECK(spans(e) == Spans{{0, 1}, {1, 4}, {4, 5}});  // "é" covers the 3 original bytes
    CHECK(e.tokens[1].text == test::byte_char(0xC3) + test::byte_char(0xA9));
    CHECK(tok->encode("\xE2\x84\xAB").ids() == Ids{257});
    CHECK(spans(tok->encode("\xE2\x84\xAB")) == Spans{{0, 3}});
    CHECK(tok->encode("\xEF\xAC\x81").ids() == Ids{0xEF, 0xAC, 0x81});  // unchanged by NFC
    auto h = tok->encode("a\xE1\x84\x80\xE1\x85\xA1");
    CHECK(h.ids() == Ids{'a', 258});
    CHECK(spans(h) == Spans{{0, 1}, {1, 7}});
    // Already-composed input is untouched, spans byte for byte.
    CHECK(tok->encode("\xC3\xA9").ids() == Ids{256});
    for (const char* s : {"xe\xCC\x81y", "\xE2\x84\xAB\xE2\x84\xAB", "e\xCC\x81\xCC\x81", "\xE1\x84\x80\xE1\x85\xA1!"})
      test::check_spans(*tok, s);
  }
  SECTION("NFKC") {
    auto tok = unicode_tokenizer(dir, R"({"type":"NFKC"})");
    auto e = tok->encode("\xEF\xAC\x81x");
    CHECK(e.ids() == Ids{'f', 'i', 'x'});
    test::check_spans(*tok, "\xEF\xAC\x81x");
    CHECK(e.tokens.back().begin == 3);  // "x" keeps its own byte
    CHECK(tok->encode("e\xCC\x81").ids() == Ids{256});
  }
  SECTION("NFD") {
    auto tok = unicode_tokenizer(dir, R"({"type":"NFD"})");
    CHECK(tok->encode("\xC3\xA9").ids() == Ids{'e', 0xCC, 0x81});
    test::check_spans(*tok, "\xC3\xA9");
  }
  SECTION("Sequence of Strip, Replace (regex) and Lowercase") {
    auto tok = unicode_tokenizer(dir, R"({"type":"Sequence","normalizers":[{"type":"Strip","strip_left":true,"strip_right":true},)"
                                      R"({"type":"Replace","pattern":{"Regex":" +"},"content":" "},{"type":"Lowercase"}]})");
    // "  AB   C " -> "ab c"
    auto e = tok->encode("  AB   C ");
    CHECK(e.ids() == Ids{'a', 'b', ' ', 'c'});
    test::check_spans(*tok, "  AB   C ");
    CHECK(tok->encode("\xC3\x89").ids() == Ids{256});  // É U+00C9 lowercases to é U+00E9
  }
}
