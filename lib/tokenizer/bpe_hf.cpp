// Loaders for Hugging Face tokenizer.json (model.type "BPE", byte-level) and GPT-2's
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

int32_t checked_id(int64_t id, std::string_view origin, std::string_view piece) {
  if (id < 0 || id > (int64_t{1} << 30)) {
    throw InputError(std::string(origin) + ": token '" + std::string(piece) + "' has id " +
                     std::to_string(id) + ", outside 0..2^30");
  }
  return static_cast<int32_t>(id);
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
    j.fail("pre_tokenizer",
           "sentencepiece-style tokenizer.json (Metaspace) is not supported; "
           "use the model's tokenizer.model");
  }
  j.fail("pre_tokenizer.type", "pre-tokenizer '" + std::string(type) + "' is not supported");
}

void check_normalizer(const Json& j, element node) {
  std::string_view type = j.str_member(node, "type");
  if (type == "Sequence") {
    if (auto list = j.member(node, "normalizers")) {
      for (element child : j.arr(*list, "normalizer.normalizers")) check_normalizer(j, child);
    }
    return;
  }
  // NFC leaves text that is already in NFC (nearly all real text) unchanged, so it is
  // accepted as the identity; see the README for the limitation.
  if (type == "NFC") return;
  j.fail("normalizer.type", "normalizer '" + std::string(type) + "' is not supported");
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
            checked_id(j.integer(id, "post_processor.special_tokens.ids"), j.path().string(), name);
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
            checked_id(j.integer(a.at(1).value(), "post_processor"), j.path().string(), key));
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
  if (j.boolean(*model_el, "byte_fallback", false)) {
    j.fail("model.byte_fallback",
           "sentencepiece-style tokenizer.json is not supported; use the "
           "model's tokenizer.model");
  }

  BpeSpec spec;
  spec.model = std::make_unique<BpeModel>();
  spec.description = "bpe:" + origin;
  auto vocab = j.member(*model_el, "vocab");
  if (!vocab) j.fail("model.vocab", "missing");
  object vocab_obj = j.obj(*vocab, "model.vocab");
  spec.model->reserve(vocab_obj.size());
  for (auto [key, value] : vocab_obj) {
    add_vocab_entry(*spec.model, key, checked_id(j.integer(value, "model.vocab"), origin, key));
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

  if (auto added = j.member(j.root(), "added_tokens")) {
    for (element a : j.arr(*added, "added_tokens")) {
      auto id_el = j.member(a, "id");
      if (!id_el) j.fail("added_tokens.id", "missing");
      std::string_view content = j.str_member(a, "content");
      spec.added.push_back({checked_id(j.integer(*id_el, "added_tokens.id"), origin, content),
                            std::string(content), j.boolean(a, "special", false)});
    }
  }

  if (auto norm = j.member(j.root(), "normalizer")) check_normalizer(j, *norm);
  bool byte_level = false;
  if (auto pre = j.member(j.root(), "pre_tokenizer"))
    byte_level = parse_pre_tokenizer(j, *pre, spec);
  if (auto dec = j.member(j.root(), "decoder")) {
    byte_level = byte_level || j.str_member(*dec, "type") == "ByteLevel";
  }
  if (!byte_level) {
    j.fail("pre_tokenizer",
           "only byte-level BPE is supported (no ByteLevel pre-tokenizer or "
           "decoder)");
  }
  spec.model->finish(origin);

  if (auto post = j.member(j.root(), "post_processor")) parse_post_processor(j, *post, spec);
  spec.bos = resolve_token(j, spec, cfg.bos_token, "bos_token",
                           {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>"});
  if (!spec.bos && !spec.prefix_ids.empty()) spec.bos = spec.prefix_ids.front();
  spec.eos = resolve_token(j, spec, cfg.eos_token, "eos_token",
                           {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"});
  spec.pad = resolve_token(j, spec, cfg.pad_token, "pad_token", {});
  std::optional<std::string> unk = cfg.unk_token;
  if (!unk) {
    if (auto u = j.str_member(*model_el, "unk_token"); !u.empty()) unk = std::string(u);
  }
  spec.unk = resolve_token(j, spec, unk, "unk_token", {});
  apply_config_flags(j, cfg, spec);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

std::unique_ptr<Tokenizer> load_gpt2_vocab_merges(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt) {
  Json j(vocab_json);
  BpeSpec spec;
  spec.model = std::make_unique<BpeModel>();
  spec.description = "bpe:" + vocab_json.string();
  for (auto [key, value] : j.obj(j.root(), "(top level)")) {
    add_vocab_entry(*spec.model, key, checked_id(j.integer(value, key), vocab_json.string(), key));
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
