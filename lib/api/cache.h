// The on-disk response cache of `pizza api`: one file per request, named by the SHA-256 of
// base URL + "\n" + model + "\n" + canonical body (never the API key), sharded by the first
// two hex digits (<dir>/ab/abcdef....json), written atomically. A rerun of the same requests
// sends nothing.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::api {

std::string cache_key(std::string_view base_url, std::string_view model, std::string_view body);

// $XDG_CACHE_HOME/pizza/api, else $HOME/.cache/pizza/api (values passed in, so callers read
// the environment once). Throws InputError when neither is set.
std::filesystem::path default_cache_dir(const char* xdg_cache_home, const char* home);

class ResponseCache {
 public:
  explicit ResponseCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path path_of(const std::string& key) const;
  bool contains(const std::string& key) const;
  // The cached body, or nullopt on a miss.
  std::optional<std::string> get(const std::string& key) const;
  // Stores a response body (atomically: a reader sees the old state or the whole new file).
  void put(const std::string& key, std::string_view body) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace pizza::api
