#include "hub/cache_layout.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>

#include "util/error.h"
#include "util/file.h"
#include "util/split.h"

namespace fs = std::filesystem;

namespace pizza::hub {

bool is_commit_hash(std::string_view s) {
  return s.size() == 40 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

namespace {

// huggingface_hub names a model repo's folder "models--" + repo id with '/' -> "--".
std::string folder_name(std::string_view repo) {
  std::string name = "models--";
  for (char c : repo) {
    if (c == '/') {
      name += "--";
    } else {
      name += c;
    }
  }
  return name;
}

bool exists_no_throw(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);  // follows symlinks: a dangling link into blobs/ counts as absent
}

}  // namespace

fs::path repo_folder(const fs::path& cache, std::string_view repo) {
  return cache / folder_name(repo);
}

fs::path lock_folder(const fs::path& cache, std::string_view repo) {
  return cache / ".locks" / folder_name(repo);
}

std::optional<std::string> read_ref(const fs::path& repo_dir, std::string_view revision) {
  if (is_commit_hash(revision)) return std::string(revision);
  fs::path ref = repo_dir / "refs" / std::string(revision);
  if (!exists_no_throw(ref)) return std::nullopt;
  std::string commit(trim(read_file(ref)));
  if (!is_commit_hash(commit)) {
    throw InputError("corrupt Hugging Face cache ref " + ref.string() +
                     ": expected a 40-hex commit hash");
  }
  return commit;
}

bool is_safe_repo_file(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  if (std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == '\\'; }))
    return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

std::vector<std::string> index_shards(const fs::path& index_path) {
  auto fail = [&](const std::string& why) {
    throw InputError("invalid weight index " + index_path.string() + ": " + why);
  };
  const simdjson::padded_string json(read_file(index_path));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc)) fail("not valid JSON");
  simdjson::dom::object weight_map;
  if (doc["weight_map"].get_object().get(weight_map)) fail("no \"weight_map\" object");
  std::vector<std::string> shards;
  for (auto field : weight_map) {
    std::string_view file;
    if (field.value.get_string().get(file)) fail("weight_map values must be file names");
    if (!is_safe_repo_file(file)) fail("shard name '" + std::string(file) + "' is not allowed");
    shards.emplace_back(file);
  }
  if (shards.empty()) fail("\"weight_map\" is empty");
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  return shards;
}

bool snapshot_complete(const fs::path& snapshot, Need need) {
  auto has = [&](std::string_view f) { return exists_no_throw(snapshot / std::string(f)); };
  if (!std::any_of(std::begin(kTokenizerModels), std::end(kTokenizerModels), has)) return false;
  if (need == Need::tokenizer) return true;
  if (!has(kConfigFile)) return false;
  if (has(kSingleWeights)) return true;
  if (!has(kWeightIndex)) return false;
  auto shards = index_shards(snapshot / std::string(kWeightIndex));
  return std::all_of(shards.begin(), shards.end(), [&](const std::string& s) { return has(s); });
}

}  // namespace pizza::hub
