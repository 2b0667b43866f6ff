#include "api/cache.h"

#include "api/digest.h"
#include "util/error.h"
#include "util/file.h"

#include <system_error>

namespace pizza::api {

namespace fs = std::filesystem;

std::string cache_key(std::string_view base_url, std::string_view model, std::string_view body) {
  return to_hex(Sha256().update(base_url).update("\n").update(model).update("\n").update(body).finish());
}

fs::path default_cache_dir(const char* xdg_cache_home, const char* home) {
  // XDG Base Directory spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
  if (xdg_cache_home && *xdg_cache_home && fs::path(xdg_cache_home).is_absolute()) {
    return fs::path(xdg_cache_home) / "pizza" / "api";
  }
  if (home && *home) return fs::path(home) / ".cache" / "pizza" / "api";
  throw InputError("cannot place the API cache: neither XDG_CACHE_HOME nor HOME is set; pass --cache-dir");
}

fs::path ResponseCache::path_of(const std::string& key) const {
  return dir_ / key.substr(0, 2) / (key + ".json");
}

bool ResponseCache::contains(const std::string& key) const {
  std::error_code ec;
  return fs::is_regular_file(path_of(key), ec);
}

std::optional<std::string> ResponseCache::get(const std::string& key) const {
  if (!contains(key)) return std::nullopt;
  return read_file(path_of(key));
}

void ResponseCache::put(const std::string& key, std::string_view body) const {
  fs::path path = path_of(key);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec)
    throw InputError("cannot create cache directory " + path.parent_path().string() + ": " + ec.message());
  write_file_atomic(path, body);
}

}  // namespace pizza::api
