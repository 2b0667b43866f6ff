// Picks the tokenizer implementation for a model directory or a tokenizer file.
#include <filesystem>

#include "tokenizer/bpe.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pizza {

namespace {

std::unique_ptr<Tokenizer> load_file(const std::filesystem::path& file, const TokenizerConfig& cfg) {
  const auto name = file.filename().string();
  const auto ext = file.extension().string();
  if (ext == ".model") return load_sentencepiece(file, cfg);
  if (ext == ".tiktoken") {
    const auto stem = file.stem().string();
    if (!looks_like_tiktoken_name(stem))
      throw InputError(file.string() + ": cannot tell the tiktoken encoding from the file name (expected "
                       "cl100k_base.tiktoken, o200k_base.tiktoken, r50k_base.tiktoken, p50k_base.tiktoken or gpt2.tiktoken)");
    return load_tiktoken(file, stem);
  }
  if (ext == ".json" && name != "vocab.json") return load_hf_tokenizer_json(file, cfg);
  if (name == "vocab.json" || ext == ".txt") {
    const auto dir = file.parent_path();
    return load_gpt2_vocab_merges(dir / "vocab.json", dir / "merges.txt");
  }
  throw InputError(file.string() + ": unknown tokenizer file type (expected tokenizer.model, tokenizer.json, "
                   "vocab.json + merges.txt, or a .tiktoken rank file)");
}

std::unique_ptr<Tokenizer> load_tokenizer_at(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    auto cfg = load_tokenizer_config(path);
    // tokenizer.model is the sentencepiece original and wins for sentencepiece models; without
    // it, tokenizer.json is loaded whatever its style (byte-level, or the sentencepiece-style
    // conversion with Metaspace / Prepend + byte fallback).
    if (fs::exists(path / "tokenizer.model")) return load_sentencepiece(path / "tokenizer.model", cfg);
    if (fs::exists(path / "tokenizer.json")) return load_hf_tokenizer_json(path / "tokenizer.json", cfg);
    if (fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt"))
      return load_gpt2_vocab_merges(path / "vocab.json", path / "merges.txt");
    throw InputError(path.string() + ": no tokenizer found (looked for tokenizer.model, tokenizer.json, "
                     "vocab.json + merges.txt)");
  }
  if (!fs::exists(path)) throw InputError(path.string() + ": no such tokenizer file");
  return load_file(path, load_tokenizer_config(path.parent_path()));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  return reading(path.string(), [&] { return load_tokenizer_at(path); });
}

std::unique_ptr<Tokenizer> load_tokenizer(std::string_view name, const std::filesystem::path& dir) {
  if (looks_like_tiktoken_name(name)) {
    auto file = dir / (std::string(name) + ".tiktoken");
    if (!std::filesystem::exists(file))
      throw InputError("tiktoken encoding '" + std::string(name) + "' needs its rank file " + file.string());
    return load_tiktoken(file, name);
  }
  return load_tokenizer(dir / std::string(name));
}

}  // namespace pizza
