#include <filesystem>

#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pizza {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    auto cfg = load_tokenizer_config(path);
    if (fs::exists(path / "tokenizer.model")) return load_sentencepiece(path / "tokenizer.model", cfg);
    throw InputError(path.string() + ": no tokenizer found (looked for tokenizer.model)");
  }
  if (!fs::exists(path)) throw InputError(path.string() + ": no such tokenizer file");
  auto cfg = load_tokenizer_config(path.parent_path());
  return load_sentencepiece(path, cfg);
}

}  // namespace pizza
