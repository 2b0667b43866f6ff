#include "checkpoint/model_tokenizer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "checkpoint/llama2c.h"
#include "util/error.h"

namespace pizza {

namespace {

// llama2.c ships its sentencepiece model beside the .bin (tokenizer.model, or tok512.model
// and the like for custom vocabularies).
std::filesystem::path tokenizer_beside(const std::filesystem::path& bin) {
  const auto dir = bin.has_parent_path() ? bin.parent_path() : std::filesystem::path(".");
  if (std::filesystem::is_regular_file(dir / "tokenizer.model")) return dir / "tokenizer.model";
  std::vector<std::filesystem::path> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (entry.is_regular_file() && name.rfind("tok", 0) == 0 && entry.path().extension() == ".model")
      found.push_back(entry.path());
  }
  if (found.empty())
    throw InputError(bin.string() + ": a llama2.c checkpoint needs a sentencepiece tokenizer: pass --tokenizer, or put "
                                    "tokenizer.model (or tok*.model) beside it");
  std::sort(found.begin(), found.end());  // deterministic choice when several exist
  return found.front();
}

}  // namespace

bool is_llama2c_file(const std::filesystem::path& path) {
  return checkpoint::is_llama2c_path(path) && std::filesystem::is_regular_file(path);
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const std::filesystem::path& model) {
  return load_tokenizer(is_llama2c_file(model) ? tokenizer_beside(model) : model);
}

}  // namespace pizza
