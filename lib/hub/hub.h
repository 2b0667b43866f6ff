// Hugging Face model sources: `--model` accepts a local path or a hub repo id `org/name[@rev]`.
// Repo ids are looked up in the standard huggingface_hub cache (models--org--name/refs,
// snapshots, blobs) and, when missing, downloaded into that same layout so pizza and Python
// users share one cache.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::hub {

// What a caller needs from a repo: the whole model, or only its tokenizer (pizza tokenize
// should not fetch gigabytes of weights to split a sentence).
enum class Need { model, tokenizer };

struct HubOptions {
  std::optional<std::filesystem::path> cache_dir;   // overrides HF_HUB_CACHE / HF_HOME
  std::optional<std::string> endpoint;              // overrides HF_ENDPOINT
  std::optional<std::filesystem::path> token_file;  // overrides HF_TOKEN
  std::optional<bool> offline;                      // overrides HF_HUB_OFFLINE
  bool allow_download = true;
  bool progress = true;  // progress bar on stderr (only drawn when stderr is a terminal)
  Need need = Need::model;
};

struct RepoRef {
  std::string repo;      // "org/name"
  std::string revision;  // branch, tag or 40-hex commit; "main" by default
};

// Reads one environment variable (nullopt when unset). Injected so that tests can supply
// their own environment instead of mutating the process's.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
EnvLookup system_env();

// "org/name[@rev]" -> RepoRef; nullopt when `spec` is not shaped like a hub repo id.
std::optional<RepoRef> parse_repo_id(std::string_view spec);

// $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (the same rules as huggingface_hub). Empty variables count as unset.
std::filesystem::path default_cache_dir(const EnvLookup& env);
std::filesystem::path default_cache_dir();

// The snapshot directory of `ref` in `cache` when it holds everything pizza needs (config.json,
// the weights — model.safetensors or the index plus every shard it names — and a tokenizer
// file: tokenizer.json, tokenizer.model or vocab.json; only the tokenizer file for
// Need::tokenizer); nullopt otherwise.
std::optional<std::filesystem::path> find_in_cache(const RepoRef& ref,
                                                   const std::filesystem::path& cache,
                                                   Need need = Need::model);

// (a) an existing local path is returned unchanged; (b) a repo id found complete in the cache
// gives its snapshot directory; (c) otherwise the needed files are downloaded into the cache
// (unless offline or downloads are disabled). Throws InputError with a one-line message.
std::filesystem::path resolve_model(std::string_view spec, const HubOptions& options,
                                    const EnvLookup& env);
std::filesystem::path resolve_model(std::string_view spec, const HubOptions& options = {});

}  // namespace pizza::hub
