// Follows what transformers' convert_slow_tokenizer.py does for Llama (read, not copied):
// vocab = piece -> id for every piece; merges = for every piece, each split into two pieces
// that are both in the vocabulary, ordered by the merged piece's score (highest first), ties
// by the left part's length then the right part's (longest first, in characters), remaining
// ties in vocabulary order (the sort is stable, and each piece's own splits are listed by
// (left id, right id)); model BPE with byte_fallback and fuse_unk; <unk>, <s>, </s> added as
// special tokens.
#include "spm_to_hf_json.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "test_util.h"
#include "tokenizer/sentencepiece.h"

namespace pizza::test {
namespace {

size_t char_count(const std::string& s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

struct Merge {
  int32_t left, right;
  float score;
  size_t left_chars, right_chars;
};

std::vector<Merge> generate_merges(const std::vector<SentencePieceEntry>& pieces,
                                   const std::unordered_map<std::string, int32_t>& vocab) {
  std::vector<Merge> merges;
  for (const auto& p : pieces) {
    std::vector<Merge> local;
    for (size_t k = 1; k < p.piece.size(); ++k) {
      if ((static_cast<unsigned char>(p.piece[k]) & 0xC0) == 0x80) continue;  // split at characters only
      auto l = vocab.find(p.piece.substr(0, k)), r = vocab.find(p.piece.substr(k));
      if (l == vocab.end() || r == vocab.end()) continue;
      local.push_back({l->second, r->second, p.score, char_count(l->first), char_count(r->first)});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tie(a.score, a.left_chars, a.right_chars) > std::tie(b.score, b.left_chars, b.right_chars);
  });
  return merges;
}

std::string metaspace_fields(const SpmJsonStyle& style) {
  std::string s = R"("replacement":"▁",)";
  s += style.prepend_scheme.empty() ? R"("add_prefix_space":true)"
                                    : R"("prepend_scheme":)" + json_string(style.prepend_scheme);
  return s;
}

}  // namespace

std::string spm_to_hf_json(const std::filesystem::path& model, const SpmJsonStyle& style) {
  const auto pieces = read_sentencepiece_pieces(model);
  std::unordered_map<std::string, int32_t> vocab;
  for (size_t i = 0; i < pieces.size(); ++i) vocab.emplace(pieces[i].piece, static_cast<int32_t>(i));

  std::string out = R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[)";
  for (int32_t id : {0, 1, 2}) {
    if (id) out += ",";
    out += R"({"id":)" + std::to_string(id) + R"(,"content":)" + json_string(pieces[id].piece) +
           R"(,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true})";
  }
  out += "],";
  if (style.metaspace) {
    out += R"("normalizer":null,"pre_tokenizer":{"type":"Metaspace",)" + metaspace_fields(style) +
           R"(,"split":)" + (style.split ? "true" : "false") + "},";
  } else {
    out += R"("normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},)"
           R"({"type":"Replace","pattern":{"String":" "},"content":"▁"}]},"pre_tokenizer":null,)";
  }
  if (style.bos_template) {
    out += R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},)"
           R"({"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},)";
  } else {
    out += R"("post_processor":null,)";
  }
  if (style.metaspace_decoder) {
    out += R"("decoder":{"type":"Metaspace",)" + metaspace_fields(style) + "},";
  } else {
    out += R"("decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},)"
           R"({"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},)";
  }
  out += R"("model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,)"
         R"("end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"vocab":{)";
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i) out += ",";
    out += json_string(pieces[i].piece) + ":" + std::to_string(i);
  }
  out += R"(},"merges":[)";
  bool first = true;
  for (const auto& m : generate_merges(pieces, vocab)) {
    if (!first) out += ",";
    first = false;
    out += "[" + json_string(pieces[m.left].piece) + "," + json_string(pieces[m.right].piece) + "]";
  }
  out += "]}}";
  return out;
}

}  // namespace pizza::test
