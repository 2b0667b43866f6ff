// Loaders for Hugging Face tokenizer.json (model.type "BPE": byte-level, or character-level
// with byte fallback as transformers writes for sentencepiece models) and GPT-2's
// vocab.json + merges.txt.
#include <simdjson.h>

#include <charconv>

#include "tokenizer/bpe.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/byte_level.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// Typed access to a parsed JSON file; every failure names the file and the field.
class Json {
 public:
  explicit Json(const std::filesystem::path& path) : path_(path) {
    // read_file already throws InputError naming the path when it cannot open it.
    simdjson::padded_string text(read_file(path));
    if (auto err = parser_.parse(text).get(root_))
      fail("", std::string("is not valid JSON: ") + simdjson::error_message(err));
  }
  element root() const { return root_; }
  const std::filesystem::path& path() const { return path_; }

  [[noreturn]] void fail(std::string_view field, const std::string& what) const {
    std::string msg = path_.string();
    if (!field.empty()) msg += ": field '" + std::string(field) + "'";
    throw InputError(msg + ": " + what);
  }
  // Member `key` of `obj`, or nullopt when absent or null.
  std::optional<element> member(element obj, std::string_view key) const {
    element v;
    if (obj.type() != simdjson::dom::element_type::OBJECT || obj[key].get(v) || v.is_null()) {
      return std::nullopt;
    }
    return v;
  }
  std::string_view str(element e, std::string_view field) const {
    std::string_view s;
    if (e.get(s)) fail(field, "expected a string");
    return s;
  }
  int64_t integer(element e, std::string_view field) const {
    int64_t v = 0;
    if (e.get(v)) fail(field, "expected an integer");
    return v;
  }
  bool boolean(element obj, std::string_view key, bool fallback) const {
    auto e = member(obj, key);
    if (!e) return fallback;
    bool v = false;
    if (e->get(v)) fail(key, "expected true or false");
    return v;
  }
  std::string_view str_member(element obj, std::string_view key) const {
    auto e = member(obj, key);
    return e ? str(*e, key) : std::string_view();
  }
  object obj(element e, std::string_view field) const {
    object o;
    if (e.get(o)) fail(field, "expected an object");
    return o;
  }
  array arr(element e, std::string_view field) const {
    array a;
    if (e.get(a)) fail(field, "expected an array");
    return a;
  }

 private:
  std::filesystem::path path_;
  simdjson::dom::parser parser_;
  element root_;
};

// A token id from the file, at most `max_id` (max_token_id of the tokens the file holds).
int32_t checked_id(int64_t id, int64_t max_id, std::string_view origin, std::string_view piece) {
  if (id < 0 || id > max_id) {
    throw InputError(std::string(origin) + ": token '" + std::string(piece) + "' has id " + std::to_string(id) +
                     ", outside 0.." + std::to_string(max_id) + " (the file holds far fewer tokens)");
  }
  return static_cast<int32_t>(id);
}

// `piece`, the spelling of a token in `field`, unless it is longer than any token may be.
std::string_view checked_piece(std::string_view piece, std::string_view origin, std::string_view field) {
  if (piece.size() > kMaxTokenBytes) {
    throw InputError(std::string(origin) + ": field '" + std::string(field) + "': a token is " +
                     std::to_string(piece.size()) + " bytes long, more than the " +
                     std::to_string(kMaxTokenBytes) + " a token may have");
  }
  return piece;
}

// A vocabulary entry spelled in GPT-2's byte-to-character alphabet. Entries outside it (added
// tokens with other characters) keep their spelling as bytes: BPE never produces them.
void add_vocab_entry(BpeModel& model, std::string_view piece, int32_t id) {
  auto bytes = byte_level::piece_to_bytes(piece);
  model.add_token(id, bytes ? std::move(*bytes) : std::string(piece), std::string(piece));
}

// Merge `rank` of two vocabulary spellings; `where` locates it for the error message.
void add_merge_pieces(BpeModel& model, std::string_view a, std::string_view b, int32_t rank,
                      const std::string& where) {
  auto left = model.find_piece(a), right = model.find_piece(b);
  auto merged = model.find_piece(std::string(a) + std::string(b));
  if (!left || !right || !merged) {
    throw InputError(where + ": merge '" + std::string(a) + " " + std::string(b) +
                     "' uses a token that is not in the vocabulary");
  }
  model.add_merge(*left, *right, rank, *merged);
}

void add_split_step(BpeSpec& spec, std::string_view pattern, bool literal,
                    std::string_view origin) {
  spec.steps.push_back(
      {PreTokenizeStep::Kind::kSplit, std::make_shared<const Regex>(pattern, literal, origin)});
}

// HF ByteLevel pre-tokenizer = optional prefix space, then optionally GPT-2's regex.
void add_byte_level_steps(BpeSpec& spec, bool add_prefix_space, bool use_regex,
                          std::string_view origin) {
  if (add_prefix_space) spec.steps.push_back({PreTokenizeStep::Kind::kPrefixSpace, nullptr});
  if (use_regex) add_split_step(spec, pretokenize_patterns::kGpt2, false, origin);
}

// Metaspace's replacement character (pre-tokenizer and decoder): one character, "▁" by default.
std::string_view replacement_char(const Json& j, element node, std::string_view field) {
  auto e = j.member(node, "replacement");
  if (!e) return "\xE2\x96\x81";
  std::string_view r = j.str(*e, field);
  if (r.empty()) j.fail(field, "must not be empty");
  return r;
}

// Metaspace's prepend_scheme, or the older add_prefix_space flag (true = "always").
MetaspaceSpec::Prepend prepend_scheme(const Json& j, element node, std::string_view where) {
  if (auto e = j.member(node, "prepend_scheme")) {
    std::string_view v = j.str(*e, std::string(where) + ".prepend_scheme");
    if (v == "always") return MetaspaceSpec::Prepend::kAlways;
    if (v == "first") return MetaspaceSpec::Prepend::kFirst;
    if (v == "never") return MetaspaceSpec::Prepend::kNever;
    j.fail(std::string(where) + ".prepend_scheme",
           "unknown value '" + std::string(v) + "' (expected \"always\", \"first\" or \"never\")");
  }
  return j.boolean(node, "add_prefix_space", true) ? MetaspaceSpec::Prepend::kAlways
                                                   : MetaspaceSpec::Prepend::kNever;
}

// A Replace normaliser's or decoder's {"String": ...} / {"Regex": ...} pattern.
std::shared_ptr<const Regex> replace_pattern(const Json& j, element node, std::string_view where) {
  const std::string field = std::string(where) + ".pattern";
  auto pattern = j.member(node, "pattern");
  if (!pattern) j.fail(field, "missing");
  auto regex = j.member(*pattern, "Regex");
  auto literal = j.member(*pattern, "String");
  if (!regex && !literal) j.fail(field, "expected {\"Regex\": ...} or {\"String\": ...}");
  return std::make_shared<const Regex>(j.str(regex ? *regex : *literal, field), !regex,
                                       j.path().string());
}

// Appends the steps of one pre_tokenizer node; returns whether a ByteLevel step was seen.
bool parse_pre_tokenizer(const Json& j, element node, BpeSpec& spec) {
  const std::string origin = j.path().string();
  std::string_view type = j.str_member(node, "type");
  if (type == "Sequence") {
    bool byte_level = false;
    auto list = j.member(node, "pretokenizers");
    if (!list) j.fail("pre_tokenizer.pretokenizers", "missing");
    for (element child : j.arr(*list, "pre_tokenizer.pretokenizers")) {
      byte_level = parse_pre_tokenizer(j, child, spec) || byte_level;
    }
    return byte_level;
  }
  if (type == "ByteLevel") {
    add_byte_level_steps(spec, j.boolean(node, "add_prefix_space", true),
                         j.boolean(node, "use_regex", true), origin);
    return true;
  }
  if (type == "Split") {
    auto pattern = j.member(node, "pattern");
    if (!pattern) j.fail("pre_tokenizer.pattern", "missing");
    auto regex = j.member(*pattern, "Regex");
    auto literal = j.member(*pattern, "String");
    if (!regex && !literal)
      j.fail("pre_tokenizer.pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    std::string_view behavior = j.str_member(node, "behavior");
    if (behavior != "Isolated" || j.boolean(node, "invert", false)) {
      j.fail("pre_tokenizer.behavior", "Split behaviour '" + std::string(behavior) +
                                           "' is not supported (only Isolated, not inverted)");
    }
    add_split_step(spec, j.str(regex ? *regex : *literal, "pre_tokenizer.pattern"), !regex, origin);
    return false;
  }
  if (type == "Digits") {
    add_split_step(spec, j.boolean(node, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
                   false, origin);
    return false;
  }
  if (type == "Metaspace") {
    // Metaspace rewrites the text, so it must see it whole: only as the first step.
    if (!spec.steps.empty() || spec.metaspace)
      j.fail("pre_tokenizer", "Metaspace is only supported as the first pre-tokenizer");
    MetaspaceSpec m;
    m.replacement = std::string(replacement_char(j, node, "pre_tokenizer.replacement"));
    m.prepend = prepend_scheme(j, node, "pre_tokenizer");
    m.split = j.boolean(node, "split", true);
    m.space = std::make_shared<const Regex>(" ", true, origin);
    spec.metaspace = std::move(m);
    return false;
  }
  j.fail("pre_tokenizer.type", "pre-tokenizer '" + std::string(type) + "' is not supported");
}

void parse_normalizer(const Json& j, element node, std::vector<NormalizeStep>& steps) {
  using K = NormalizeStep::Kind;
  std::string_view type = j.str_member(node, "type");
  if (type == "Sequence") {
    if (auto list = j.member(node, "normalizers")) {
      for (element child : j.arr(*list, "normalizer.normalizers")) parse_normalizer(j, child, steps);
    }
    return;
  }
  NormalizeStep step;
  if (type == "NFC") {
    step.kind = K::kNfc;
  } else if (type == "NFD") {
    step.kind = K::kNfd;
  } else if (type == "NFKC") {
    step.kind = K::kNfkc;
  } else if (type == "NFKD") {
    step.kind = K::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = K::kLowercase;
  } else if (type == "Prepend") {
    step.kind = K::kPrepend;
    auto e = j.member(node, "prepend");
    if (!e) j.fail("normalizer.prepend", "missing");
    step.text = std::string(j.str(*e, "normalizer.prepend"));
  } else if (type == "Replace") {
    step.kind = K::kReplace;
    step.pattern = replace_pattern(j, node, "normalizer");
    step.text = std::string(j.str_member(node, "content"));
  } else if (type == "Strip") {
    step.kind = K::kStrip;
    step.left = j.boolean(node, "strip_left", true);
    step.right = j.boolean(node, "strip_right", true);
  } else {
    j.fail("normalizer.type", "normalizer '" + std::string(type) +
                                  "' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                                  "Prepend, Replace, Strip, Sequence)");
  }
  steps.push_back(std::move(step));
}

// The decoder chain of a tokenizer that is not byte-level.
void parse_decoder(const Json& j, element node, std::vector<DecodeStep>& steps) {
  using K = DecodeStep::Kind;
  std::string_view type = j.str_member(node, "type");
  if (type == "Sequence") {
    if (auto list = j.member(node, "decoders")) {
      for (element child : j.arr(*list, "decoder.decoders")) parse_decoder(j, child, steps);
    }
    return;
  }
  DecodeStep step;
  if (type == "Replace") {
    step.kind = K::kReplace;
    step.pattern = replace_pattern(j, node, "decoder");
    step.text = std::string(j.str_member(node, "content"));
  } else if (type == "ByteFallback") {
    step.kind = K::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = K::kFuse;
  } else if (type == "Strip") {
    step.kind = K::kStrip;
    step.text = std::string(j.str_member(node, "content"));
    if (step.text.empty()) j.fail("decoder.content", "missing");
    for (auto [key, target] : {std::pair{"start", &step.start}, std::pair{"stop", &step.stop}}) {
      auto e = j.member(node, key);
      int64_t v = e ? j.integer(*e, "decoder.start/stop") : 0;
      if (v < 0) j.fail("decoder.start/stop", "must not be negative");
      *target = static_cast<size_t>(v);
    }
  } else if (type == "Metaspace") {
    step.kind = K::kMetaspace;
    step.text = std::string(replacement_char(j, node, "decoder.replacement"));
    step.prepend = prepend_scheme(j, node, "decoder") != MetaspaceSpec::Prepend::kNever;
  } else {
    j.fail("decoder.type", "decoder '" + std::string(type) +
                               "' is not supported here (supported: Replace, ByteFallback, Fuse, "
                               "Strip, Metaspace, Sequence; ByteLevel with a ByteLevel vocabulary)");
  }
  steps.push_back(std::move(step));
}

std::optional<int32_t> find_token(const BpeSpec& spec, std::string_view content) {
  for (const auto& a : spec.added) {
    if (a.content == content) return a.id;
  }
  return spec.model->find_piece(content);
}

std::optional<int32_t> resolve_token(const Json& j, const BpeSpec& spec,
                                     const std::optional<std::string>& configured,
                                     std::string_view field,
                                     std::initializer_list<std::string_view> usual) {
  if (configured) {
    auto id = find_token(spec, *configured);
    if (!id) j.fail(field, "configured token '" + *configured + "' is not in the vocabulary");
    return id;
  }
  for (auto name : usual) {
    if (auto id = find_token(spec, name)) return id;
  }
  return std::nullopt;
}

// The special tokens a post_processor template puts before and after the text.
void parse_post_processor(const Json& j, element node, BpeSpec& spec) {
  std::string_view type = j.str_member(node, "type");
  if (type == "Sequence") {
    if (auto list = j.member(node, "processors")) {
      for (element child : j.arr(*list, "post_processor.processors"))
        parse_post_processor(j, child, spec);
    }
    return;
  }
  if (type == "TemplateProcessing") {
    auto single = j.member(node, "single");
    auto specials = j.member(node, "special_tokens");
    if (!single) return;
    bool after_text = false;
    for (element item : j.arr(*single, "post_processor.single")) {
      if (j.member(item, "Sequence")) {
        after_text = true;
        continue;
      }
      auto st = j.member(item, "SpecialToken");
      if (!st) continue;
      std::string_view name = j.str_member(*st, "id");
      std::optional<element> entry = specials ? j.member(*specials, name) : std::nullopt;
      auto ids = entry ? j.member(*entry, "ids") : std::nullopt;
      if (!ids) j.fail("post_processor.special_tokens", "no ids for '" + std::string(name) + "'");
      for (element id : j.arr(*ids, "post_processor.special_tokens.ids")) {
        auto v =
            checked_id(j.integer(id, "post_processor.special_tokens.ids"), int64_t{1} << 30, j.path().string(), name);
        (after_text ? spec.suffix_ids : spec.prefix_ids).push_back(v);
      }
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // "cls": [token, id], "sep": [token, id] around a single sequence.
    for (auto [key, target] :
         {std::pair{"cls", &spec.prefix_ids}, std::pair{"sep", &spec.suffix_ids}}) {
      auto pair = j.member(node, key);
      if (!pair) continue;
      array a = j.arr(*pair, "post_processor.cls/sep");
      if (a.size() == 2)
        target->push_back(
            checked_id(j.integer(a.at(1).value(), "post_processor"), int64_t{1} << 30, j.path().string(), key));
    }
  }
  // ByteLevel and others add nothing to a single sequence.
}

// Applies add_bos_token / add_eos_token from tokenizer_config.json over the template.
void apply_config_flags(const Json& j, const TokenizerConfig& cfg, BpeSpec& spec) {
  auto apply = [&](const std::optional<bool>& flag, std::vector<int32_t>& ids,
                   const std::optional<int32_t>& token, std::string_view name) {
    if (!flag) return;
    if (!*flag) {
      ids.clear();
    } else if (ids.empty()) {
      if (!token) j.fail(name, "is true but the tokenizer has no such token");
      ids.push_back(*token);
    }
  };
  apply(cfg.add_bos_token, spec.prefix_ids, spec.bos, "add_bos_token");
  apply(cfg.add_eos_token, spec.suffix_ids, spec.eos, "add_eos_token");
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::filesystem::path& path,
                                                  const TokenizerConfig& cfg) {
  Json j(path);
  const std::string origin = path.string();
  auto model_el = j.member(j.root(), "model");
  if (!model_el) j.fail("model", "missing");
  std::string_view type = j.str_member(*model_el, "type");
  if (!type.empty() && type != "BPE") {
    j.fail("model.type",
           "tokenizer model type '" + std::string(type) + "' is not supported (only BPE)");
  }
  if (!j.str_member(*model_el, "continuing_subword_prefix").empty() ||
      !j.str_member(*model_el, "end_of_word_suffix").empty()) {
    j.fail("model", "continuing_subword_prefix / end_of_word_suffix are not supported");
  }

  BpeSpec spec;
  spec.model = std::make_unique<BpeModel>();
  spec.description = "bpe:" + origin;
  // Byte-level vocabularies (GPT-2 style) spell bytes as printable characters; the others
  // (sentencepiece conversions: Metaspace or Prepend/Replace with byte_fallback) are
  // character-level and keep their pieces as written.
  bool byte_level = false;
  if (auto pre = j.member(j.root(), "pre_tokenizer"))
    byte_level = parse_pre_tokenizer(j, *pre, spec);
  auto dec = j.member(j.root(), "decoder");
  byte_level = byte_level || (dec && j.str_member(*dec, "type") == "ByteLevel");
  if (auto norm = j.member(j.root(), "normalizer")) parse_normalizer(j, *norm, spec.normalizer);
  auto vocab = j.member(*model_el, "vocab");
  if (!vocab) j.fail("model.vocab", "missing");
  object vocab_obj = j.obj(*vocab, "model.vocab");
  spec.model->reserve(vocab_obj.size());
  const auto added_el = j.member(j.root(), "added_tokens");
  const int64_t max_id = max_token_id(vocab_obj.size() + (added_el ? j.arr(*added_el, "added_tokens").size() : 0));
  for (auto [key, value] : vocab_obj) {
    checked_piece(key, origin, "model.vocab");
    const int32_t id = checked_id(j.integer(value, "model.vocab"), max_id, origin, key);
    if (byte_level) {
      add_vocab_entry(*spec.model, key, id);
    } else {
      spec.model->add_token(id, std::string(key), std::string(key));
    }
  }
  if (auto merges = j.member(*model_el, "merges")) {
    int32_t rank = 0;
    for (element m : j.arr(*merges, "model.merges")) {
      const std::string where = origin + ": model.merges[" + std::to_string(rank) + "]";
      std::string_view a, b;
      if (std::string_view s; !m.get(s)) {
        size_t sp = s.find(' ');
        if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos) {
          throw InputError(where + ": expected \"left right\", got '" + std::string(s) + "'");
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (array pair; !m.get(pair) && pair.size() == 2) {
        a = j.str(pair.at(0).value(), "model.merges");
        b = j.str(pair.at(1).value(), "model.merges");
      } else {
        throw InputError(where + ": expected \"left right\" or [left, right]");
      }
      add_merge_pieces(*spec.model, a, b, rank++, where);
    }
  }
  spec.model->set_ignore_merges(j.boolean(*model_el, "ignore_merges", false));

  if (const auto& added = added_el) {
    for (element a : j.arr(*added, "added_tokens")) {
      auto id_el = j.member(a, "id");
      if (!id_el) j.fail("added_tokens.id", "missing");
      std::string_view content = checked_piece(j.str_member(a, "content"), origin, "added_tokens.content");
      spec.added.push_back({checked_id(j.integer(*id_el, "added_tokens.id"), max_id, origin, content),
                            std::string(content), j.boolean(a, "special", false)});
    }
  }

  const std::string_view unk_piece = j.str_member(*model_el, "unk_token");
  const bool byte_fallback = j.boolean(*model_el, "byte_fallback", false);
  if (!byte_level) {
    CharLevelOptions opts;
    opts.byte_fallback = byte_fallback;
    opts.fuse_unk = j.boolean(*model_el, "fuse_unk", false);
    if (!unk_piece.empty()) {
      opts.unk = spec.model->find_piece(unk_piece);
      if (!opts.unk) j.fail("model.unk_token", "'" + std::string(unk_piece) + "' is not in the vocabulary");
    }
    spec.model->set_char_level(opts);
    spec.decoder.emplace();
    if (dec) parse_decoder(j, *dec, *spec.decoder);
  }
  spec.model->finish(origin);

  auto post = j.member(j.root(), "post_processor");
  if (post) parse_post_processor(j, *post, spec);
  spec.bos = resolve_token(j, spec, cfg.bos_token, "bos_token",
                           {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>"});
  if (!spec.bos && !spec.prefix_ids.empty()) spec.bos = spec.prefix_ids.front();
  spec.eos = resolve_token(j, spec, cfg.eos_token, "eos_token",
                           {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"});
  spec.pad = resolve_token(j, spec, cfg.pad_token, "pad_token", {});
  std::optional<std::string> unk = cfg.unk_token;
  if (!unk && !unk_piece.empty()) unk = std::string(unk_piece);
  spec.unk = resolve_token(j, spec, unk, "unk_token", {});
  // transformers' fast tokenizers for sentencepiece models (Llama, Mistral) add BOS by default;
  // files written before the template existed leave that to tokenizer_config.json.
  const bool sentencepiece_style = !byte_level && (byte_fallback || spec.metaspace);
  if (!post && sentencepiece_style && spec.bos) spec.prefix_ids.push_back(*spec.bos);
  apply_config_flags(j, cfg, spec);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

std::unique_ptr<Tokenizer> load_gpt2_vocab_merges(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt) {
  Json j(vocab_json);
  BpeSpec spec;
  spec.model = std::make_unique<BpeModel>();
  spec.description = "bpe:" + vocab_json.string();
  const object vocab = j.obj(j.root(), "(top level)");
  const int64_t max_id = max_token_id(vocab.size());
  for (auto [key, value] : vocab) {
    checked_piece(key, vocab_json.string(), "(top level)");
    add_vocab_entry(*spec.model, key, checked_id(j.integer(value, key), max_id, vocab_json.string(), key));
  }
  const std::string merges = read_file(merges_txt);
  std::string_view rest = merges;
  int32_t rank = 0;
  for (size_t line_no = 1; !rest.empty(); ++line_no) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.starts_with("#version")) continue;
    const std::string where = merges_txt.string() + ":" + std::to_string(line_no);
    size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos) {
      throw InputError(where + ": expected two tokens separated by one space, got '" +
                       std::string(line) + "'");
    }
    add_merge_pieces(*spec.model, line.substr(0, sp), line.substr(sp + 1), rank++, where);
  }
  add_byte_level_steps(spec, false, true, vocab_json.string());
  spec.model->finish(vocab_json.string());
  // GPT-2's one control token doubles as BOS and EOS (as transformers configures it).
  if (auto eot = spec.model->find_piece("<|endoftext|>")) {
    spec.added.push_back({*eot, "<|endoftext|>", true});
    spec.bos = spec.eos = *eot;
  }
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace pizza
