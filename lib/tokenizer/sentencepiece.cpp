// Sentencepiece models (tokenizer.model) through the sentencepiece library itself, loaded as
// pizza's sentencepiece module (see sentencepiece_abi.h for why it is a module). The library
// does everything that defines the tokenization: every model type (BPE, unigram, word, char),
// the normaliser the model file carries (nmt_nfkc, nfkc_cf, identity, custom rule tables),
// byte fallback, the dummy prefix, user-defined and control symbols, and decoding. pizza adds
// what tokenizer_config.json says (add_bos_token, add_eos_token, special tokens by text) and
// the span contract of tokenizer.h on top of the library's own piece offsets.
#include "tokenizer/sentencepiece.h"

#include <dlfcn.h>

#include <array>

#include "tokenizer/sentencepiece_abi.h"
#include "util/error.h"
#include "util/file.h"
#include "util/shared_library.h"

namespace pizza {

namespace {

constexpr std::string_view kModuleFile = "libpizza_sentencepiece.so";
constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, sentencepiece's visible space

// The module, opened privately: RTLD_LOCAL keeps its symbols out of the global scope and
// RTLD_DEEPBIND makes libsentencepiece bind to its own embedded protobuf before libtorch's.
// The fuzz build (PIZZA_WITHOUT_TORCH) links no libtorch, so there is no protobuf to keep apart,
// and its statically linked ASan runtime must not be bypassed: it uses RTLD_LOCAL alone.
// RTLD_NODELETE keeps it loaded once the last tokenizer is gone: the embedded protobuf allocates
// process-wide state when loaded and frees it only at its own shutdown, which nothing calls, so
// every unload lost that memory (LeakSanitizer reported it at exit of pizza serve).
// dlopen counts references, so every tokenizer holding its own handle costs one lookup.
#ifdef PIZZA_WITHOUT_TORCH
constexpr int kModuleFlags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
#else
constexpr int kModuleFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND | RTLD_NODELETE;
#endif
class Module {
 public:
  Module() : lib_(kModuleFile, kModuleFlags) {
    auto entry = reinterpret_cast<pizza_spm_entry_fn>(lib_.symbol(PIZZA_SPM_ENTRY_POINT));
    api_ = entry();
    if (!api_ || api_->abi_version != PIZZA_SPM_ABI_VERSION)
      throw InputError(lib_.path().string() + ": sentencepiece module of another version (ABI " +
                       std::to_string(api_ ? api_->abi_version : -1) + ", pizza needs " +
                       std::to_string(PIZZA_SPM_ABI_VERSION) + "): reinstall pizza");
  }
  const pizza_spm_api& api() const { return *api_; }

 private:
  SharedLibrary lib_;
  const pizza_spm_api* api_ = nullptr;
};

// A loaded model (RAII over the module's processor).
class Processor {
 public:
  explicit Processor(const std::filesystem::path& path) {
    const std::string data = read_file(path);
    std::array<char, 512> err{};
    sp_ = module_.api().load(data.data(), data.size(), err.data(), err.size());
    if (!sp_) throw InputError(path.string() + ": not a valid sentencepiece model (" + std::string(err.data()) + ")");
  }
  ~Processor() { module_.api().destroy(sp_); }
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  int32_t size() const { return module_.api().piece_count(sp_); }
  std::string_view piece(int32_t id) const {
    size_t len = 0;
    const char* p = module_.api().piece(sp_, id, &len);
    return {p, len};
  }
  float score(int32_t id) const { return module_.api().score(sp_, id); }
  int kind(int32_t id) const { return module_.api().kind(sp_, id); }
  std::optional<int32_t> reserved(int which) const {
    const int32_t id = module_.api().reserved_id(sp_, which);
    if (id < 0 || id >= size()) return std::nullopt;
    return id;
  }

  struct Piece {
    int32_t id;
    size_t begin, end;
    std::string surface;
  };
  // Encodes (or, with ids, decodes) through the library; throws InputError with its message.
  std::vector<Piece> encode(std::string_view text, const std::filesystem::path& path) const {
    std::vector<Piece> out;
    std::array<char, 512> err{};
    if (module_.api().encode(sp_, text.data(), text.size(), collect, &out, err.data(), err.size()) != 0)
      throw InputError(path.string() + ": sentencepiece could not encode the text (" + std::string(err.data()) + ")");
    return out;
  }
  std::vector<Piece> decode(std::span<const int32_t> ids, const std::filesystem::path& path) const {
    std::vector<Piece> out;
    std::array<char, 512> err{};
    if (module_.api().decode(sp_, ids.data(), ids.size(), collect, &out, err.data(), err.size()) != 0)
      throw InputError(path.string() + ": sentencepiece could not decode the ids (" + std::string(err.data()) + ")");
    return out;
  }

 private:
  static void collect(void* user, int32_t id, uint32_t begin, uint32_t end, const char* surface, size_t len) {
    static_cast<std::vector<Piece>*>(user)->push_back({id, begin, end, std::string(surface, len)});
  }

  Module module_;  // declared first: outlives sp_
  pizza_spm* sp_ = nullptr;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& path, const TokenizerConfig& cfg) : path_(path), sp_(path) {
    add_bos_ = cfg.add_bos_token.value_or(true);
    add_eos_ = cfg.add_eos_token.value_or(false);
    // tokenizer_config.json names special tokens by text; else the model's reserved ids.
    auto find_special = [&](const std::optional<std::string>& text, int which) -> std::optional<int32_t> {
      if (!text) return sp_.reserved(which);
      for (int32_t id = 0; id < sp_.size(); ++id)
        if (sp_.piece(id) == *text) return id;
      return std::nullopt;
    };
    unk_ = sp_.reserved(0);
    bos_ = find_special(cfg.bos_token, 1);
    eos_ = find_special(cfg.eos_token, 2);
    pad_ = find_special(cfg.pad_token, 3);
  }

  Encoding encode(std::string_view text, const EncodeOptions& opts) const override {
    Encoding enc;
    if (opts.add_special_tokens && add_bos_ && bos_) enc.tokens.push_back(special_token(*bos_, 0));
    size_t pos = 0;
    while (pos <= text.size()) {
      // With parse_special, the text of BOS/EOS (e.g. "</s>") maps to their ids. A special
      // token whose text is empty matches nowhere (it would match everywhere, forever).
      size_t next = text.size();
      std::optional<int32_t> hit;
      if (opts.parse_special) {
        for (auto id : {bos_, eos_}) {
          if (!id || sp_.piece(*id).empty()) continue;
          auto f = text.find(sp_.piece(*id), pos);
          if (f < next) next = f, hit = id;
        }
      }
      encode_segment(text.substr(pos, next - pos), pos, enc);
      if (!hit) break;
      auto t = special_token(*hit, next);
      t.end = next + sp_.piece(*hit).size();
      enc.tokens.push_back(t);
      pos = t.end;
    }
    if (opts.add_special_tokens && add_eos_ && eos_) enc.tokens.push_back(special_token(*eos_, text.size()));
    make_spans_contiguous(enc.tokens, text.size());
    return enc;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    for (auto id : ids) check_id(id);
    // The library's decoding, piece by piece, so control tokens can be shown when asked
    // (the library decodes them to nothing).
    std::string out;
    for (const auto& p : sp_.decode(ids, path_)) {
      if (!skip_special && sp_.kind(p.id) == PIZZA_SPM_CONTROL) out += sp_.piece(p.id);
      else out += p.surface;
    }
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    const int kind = sp_.kind(id);
    const auto p = sp_.piece(id);
    if (kind == PIZZA_SPM_CONTROL || kind == PIZZA_SPM_UNKNOWN) return {};
    if (kind == PIZZA_SPM_BYTE) {
      if (auto b = byte_fallback_value(p)) return std::string(1, *b);
      return {};
    }
    std::string out;
    for (size_t i = 0; i < p.size();) {
      if (p.substr(i, 3) == kSpace) {
        out += ' ';
        i += 3;
      } else {
        out += p[i++];
      }
    }
    return out;
  }

  std::string piece(int32_t id) const override {
    check_id(id);
    return std::string(sp_.piece(id));
  }
  int32_t vocab_size() const override { return sp_.size(); }
  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && sp_.kind(id) == PIZZA_SPM_CONTROL;
  }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  std::optional<int32_t> unk_id() const override { return unk_; }
  std::string describe() const override { return "sentencepiece:" + path_.string(); }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InputError("token id " + std::to_string(id) + " is outside the vocabulary of " + path_.string() + " (" +
                       std::to_string(vocab_size()) + " tokens)");
  }

  // One segment of text through the library, spans shifted by `base`. The library gives each
  // piece the byte range of the original text it came from; the bytes of one character that
  // fell back to <0xNN> pieces all point at that character (empty spans, then the whole
  // character on the last). tokenizer.h promises each such piece its own byte, so a run of
  // byte pieces that covers exactly as many bytes as it has pieces gets one byte each.
  void encode_segment(std::string_view text, size_t base, Encoding& enc) const {
    const auto pieces = sp_.encode(text, path_);
    const size_t first = enc.tokens.size();
    for (const auto& p : pieces) {
      if (p.begin > p.end || p.end > text.size())
        throw InputError(path_.string() + ": sentencepiece returned a piece span outside the text");
      Token t;
      t.id = p.id;
      t.text = std::string(sp_.piece(p.id));
      t.begin = base + p.begin;
      t.end = base + p.end;
      t.special = sp_.kind(p.id) == PIZZA_SPM_CONTROL;
      enc.tokens.push_back(std::move(t));
    }
    for (size_t i = first; i < enc.tokens.size();) {
      size_t j = i;
      while (j < enc.tokens.size() && sp_.kind(enc.tokens[j].id) == PIZZA_SPM_BYTE) ++j;
      if (j == i) {
        ++i;
        continue;
      }
      const size_t b = enc.tokens[i].begin, e = enc.tokens[j - 1].end;
      if (e >= b && e - b == j - i)
        for (size_t k = i; k < j; ++k) enc.tokens[k].begin = b + (k - i), enc.tokens[k].end = b + (k - i) + 1;
      i = j;
    }
  }

  Token special_token(int32_t id, size_t at) const {
    Token t;
    t.id = id;
    t.text = std::string(sp_.piece(id));
    t.begin = t.end = at;
    t.special = true;
    return t;
  }

  std::filesystem::path path_;
  Processor sp_;
  bool add_bos_ = true, add_eos_ = false;
  std::optional<int32_t> bos_, eos_, pad_, unk_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file, const TokenizerConfig& cfg) {
  if (!std::filesystem::exists(model_file)) throw InputError(model_file.string() + ": no such tokenizer file");
  return std::make_unique<SentencePieceTokenizer>(model_file, cfg);
}

std::vector<SentencePieceEntry> read_sentencepiece_pieces(const std::filesystem::path& model_file) {
  Processor sp(model_file);
  std::vector<SentencePieceEntry> out;
  out.reserve(static_cast<size_t>(sp.size()));
  for (int32_t id = 0; id < sp.size(); ++id) out.push_back({std::string(sp.piece(id)), sp.score(id), sp.kind(id)});
  return out;
}

}  // namespace pizza
