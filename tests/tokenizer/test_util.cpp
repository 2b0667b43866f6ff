#include "test_util.h"

#include <simdjson.h>

#include <algorithm>
#include <fstream>

#include "support/paths.h"
#include "util/json_writer.h"

namespace pizza::test {

std::vector<ReferenceLine> read_reference_jsonl(const std::filesystem::path& file, const char* ids_key,
                                                size_t min_lines) {
  std::ifstream in(file);
  std::vector<ReferenceLine> out;
  simdjson::dom::parser parser;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    simdjson::dom::element doc = parser.parse(line);
    ReferenceLine l{std::string(std::string_view(doc["text"])), {}};
    simdjson::dom::array ids;
    if (!doc[ids_key].get(ids))
      for (int64_t id : ids) l.ids.push_back(static_cast<int32_t>(id));
    out.push_back(std::move(l));
  }
  INFO("reference file " << file.string());
  REQUIRE(out.size() >= std::max<size_t>(min_lines, 1));
  return out;
}

bool is_byte_piece(const Tokenizer& tok, int32_t id) {
  auto p = tok.piece(id);
  return p.size() == 6 && p.rfind("<0x", 0) == 0 && p.back() == '>';
}

void check_spans(const Tokenizer& tok, const std::string& text) {
  INFO("text: " << text);
  auto enc = tok.encode(text);
  const bool has_plain = std::any_of(enc.tokens.begin(), enc.tokens.end(), [](const Token& t) { return !t.special; });
  size_t pos = 0;
  std::string joined;
  for (const auto& t : enc.tokens) {
    INFO("token " << t.id << " '" << t.text << "' [" << t.begin << ", " << t.end << ")");
    CHECK(t.begin == pos);
    REQUIRE(t.end >= t.begin);
    REQUIRE(t.end <= text.size());
    CHECK(t.text == tok.piece(t.id));
    CHECK(t.special == tok.is_special(t.id));
    if (t.special && has_plain) CHECK(t.begin == t.end);
    if (is_byte_piece(tok, t.id)) {
      CHECK(t.end - t.begin == 1);
      CHECK(text.substr(t.begin, 1) == tok.token_bytes(t.id));
    }
    joined += text.substr(t.begin, t.end - t.begin);
    pos = t.end;
  }
  CHECK(pos == text.size());
  CHECK(joined == text);
}

void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
  REQUIRE(std::filesystem::file_size(p) == s.size());
}

std::string byte_char(unsigned b) {
  static const std::vector<unsigned> cps = [] {
    std::vector<unsigned> v(256);
    unsigned moved = 0;
    for (unsigned x = 0; x < 256; ++x) {
      bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
      v[x] = keep ? x : 256 + moved++;
    }
    return v;
  }();
  unsigned cp = cps[b];
  if (cp < 0x80) return std::string(1, static_cast<char>(cp));
  return {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
}

std::string json_string(const std::string& s) { return "\"" + json_escape(s) + "\""; }

}  // namespace pizza::test
