// OpenAI tiktoken rank files: one "<base64 bytes> <rank>" line per token, no merge list (the
// rank of a merged byte string is its merge priority) and no special tokens (they come with
// the encoding name).
#include <algorithm>
#include <array>
#include <charconv>

#include "tokenizer/bpe.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/byte_level.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza {
namespace {

struct Special {
  std::string_view content;
  int32_t id;
};

struct EncodingInfo {
  std::string_view name;
  std::string_view pattern;
  std::vector<Special> specials;
};

// The encodings tiktoken's openai_public module defines.
std::optional<EncodingInfo> encoding_info(std::string_view name) {
  namespace p = pretokenize_patterns;
  if (name == "cl100k_base") {
    return EncodingInfo{name,
                        p::kCl100k,
                        {{"<|endoftext|>", 100257},
                         {"<|fim_prefix|>", 100258},
                         {"<|fim_middle|>", 100259},
                         {"<|fim_suffix|>", 100260},
                         {"<|endofprompt|>", 100276}}};
  }
  if (name == "o200k_base") {
    return EncodingInfo{name, p::kO200k, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}};
  }
  if (name == "r50k_base" || name == "gpt2") {
    return EncodingInfo{name, p::kGpt2, {{"<|endoftext|>", 50256}}};
  }
  if (name == "p50k_base") {
    return EncodingInfo{name, p::kGpt2, {{"<|endoftext|>", 50256}}};
  }
  return std::nullopt;
}

// Strict standard base64 (with '=' padding, as tiktoken writes it); nullopt when malformed.
std::optional<std::string> decode_base64(std::string_view in) {
  constexpr auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < alphabet.size(); ++i)
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  size_t pad = in.ends_with("==") ? 2 : in.ends_with('=') ? 1 : 0;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    size_t valid = 4;
    for (size_t k = 0; k < 4; ++k) {
      char c = in[i + k];
      int8_t d = table[static_cast<unsigned char>(c)];
      bool padding_slot = i + 4 == in.size() && k >= 4 - pad;
      if (padding_slot) {
        --valid;
        d = 0;
      } else if (d < 0) {
        return std::nullopt;
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (valid > 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (valid > 3) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

}  // namespace

bool looks_like_tiktoken_name(std::string_view name) { return encoding_info(name).has_value(); }

std::unique_ptr<Tokenizer> load_tiktoken(const std::filesystem::path& rank_file,
                                         std::string_view encoding_name) {
  auto info = encoding_info(encoding_name);
  if (!info) {
    throw InputError(rank_file.string() + ": unknown tiktoken encoding '" +
                     std::string(encoding_name) +
                     "' (known: cl100k_base, o200k_base, r50k_base, gpt2, p50k_base)");
  }
  const std::string origin = rank_file.string();
  MappedFile file(rank_file);
  BpeSpec spec;
  spec.model = std::make_unique<BpeModel>();
  spec.description = "tiktoken(" + std::string(encoding_name) + "):" + origin;
  std::string_view rest = file.view();
  const size_t lines = static_cast<size_t>(std::count(rest.begin(), rest.end(), '\n')) + 1;
  spec.model->reserve(lines);
  const int64_t max_rank = max_token_id(lines);
  for (size_t line_no = 1; !rest.empty(); ++line_no) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // tiktoken's loader skips blank lines too
    auto fail = [&](const std::string& what) -> void {
      throw InputError(origin + ":" + std::to_string(line_no) + ": " + what);
    };
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) fail("expected '<base64 token> <rank>'");
    auto bytes = decode_base64(line.substr(0, sp));
    if (!bytes) fail("invalid base64 token '" + std::string(line.substr(0, sp)) + "'");
    if (bytes->size() > kMaxTokenBytes)
      fail("token is " + std::to_string(bytes->size()) + " bytes long, more than the " +
           std::to_string(kMaxTokenBytes) + " a token may have");
    std::string_view rank_text = line.substr(sp + 1);
    int32_t rank = -1;
    auto [end, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || end != rank_text.data() + rank_text.size() || rank < 0)
      fail("invalid rank '" + std::string(rank_text) + "'");
    if (rank > max_rank)
      fail("rank " + std::to_string(rank) + " is far beyond the file's " + std::to_string(lines) +
           " lines (at most " + std::to_string(max_rank) + ")");
    if (spec.model->has(rank)) fail("rank " + std::to_string(rank) + " appears twice");
    std::string piece = byte_level::bytes_to_piece(*bytes);
    spec.model->add_token(rank, std::move(*bytes), std::move(piece));
  }
  spec.model->finish(origin);
  spec.model->derive_merges_from_ranks();
  // tiktoken returns a piece that is itself a token without merging.
  spec.model->set_ignore_merges(true);
  spec.steps.push_back(
      {PreTokenizeStep::Kind::kSplit, std::make_shared<const Regex>(info->pattern, false, origin)});
  for (const auto& s : info->specials) {
    spec.added.push_back({s.id, std::string(s.content), true});
  }
  spec.eos = info->specials.front().id;  // <|endoftext|>
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace pizza
