// The on-disk layout of the huggingface_hub cache (internal to pizza_hub):
//   <cache>/models--org--name/refs/<revision>          file holding a 40-hex commit
//   <cache>/models--org--name/snapshots/<commit>/<f>   symlink -> ../../blobs/<etag>
//   <cache>/models--org--name/blobs/<etag>             file contents
//   <cache>/.locks/models--org--name/<etag>.lock       cross-process download lock
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/hub.h"

namespace pizza::hub {

bool is_commit_hash(std::string_view s);

// <cache>/models--org--name
std::filesystem::path repo_folder(const std::filesystem::path& cache, std::string_view repo);
std::filesystem::path lock_folder(const std::filesystem::path& cache, std::string_view repo);

// The commit a revision names: the revision itself when it is a commit hash, else the content
// of refs/<revision>; nullopt when there is no such ref.
std::optional<std::string> read_ref(const std::filesystem::path& repo_dir,
                                    std::string_view revision);

// Files pizza needs from a model repo. Optional ones may be absent (HTTP 404).
inline constexpr std::string_view kConfigFile = "config.json";
inline constexpr std::string_view kSingleWeights = "model.safetensors";
inline constexpr std::string_view kWeightIndex = "model.safetensors.index.json";
inline constexpr std::string_view kOptionalFiles[] = {"generation_config.json"};
// At least one of these must exist: they carry the vocabulary.
inline constexpr std::string_view kTokenizerModels[] = {"tokenizer.json", "tokenizer.model",
                                                        "vocab.json"};
// Fetched when present: the rest of the tokenizer description.
inline constexpr std::string_view kTokenizerExtras[] = {"tokenizer_config.json",
                                                        "special_tokens_map.json", "merges.txt"};

// A repo-relative file name that stays inside the snapshot: non-empty '/'-separated parts,
// none of them "." or "..", no backslash or control character.
bool is_safe_repo_file(std::string_view name);

// The shard file names an index (model.safetensors.index.json) lists in its weight_map,
// sorted and unique. Throws InputError naming `index_path` when it is malformed or names a
// file outside the snapshot.
std::vector<std::string> index_shards(const std::filesystem::path& index_path);

// Whether a snapshot directory holds a tokenizer model file and, for Need::model, config.json
// and complete weights.
bool snapshot_complete(const std::filesystem::path& snapshot, Need need = Need::model);

}  // namespace pizza::hub
