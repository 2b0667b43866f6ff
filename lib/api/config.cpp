#include "api/config.h"

#include "util/error.h"
#include "util/file.h"
#include "util/split.h"

#include <curl/curl.h>

#include <memory>

namespace pizza::api {

namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlString {
  char* p = nullptr;
  ~CurlString() { curl_free(p); }
};

// Scheme and host of `url` via libcurl's own parser (the one that will send the request).
std::optional<std::pair<std::string, std::string>> scheme_and_host(std::string_view url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, std::string(url).c_str(), 0) != CURLUE_OK)
    return std::nullopt;
  CurlString scheme, host;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_HOST, &host.p, 0) != CURLUE_OK) {
    return std::nullopt;
  }
  return std::pair<std::string, std::string>(scheme.p, host.p);
}

}  // namespace

void validate_base_url(std::string_view url, std::string_view source) {
  auto parts = scheme_and_host(url);
  bool whitespace = url.find_first_of(" \t\r\n") != std::string_view::npos;
  if (!parts || whitespace || (parts->first != "http" && parts->first != "https") || parts->second.empty()) {
    throw InputError(std::string(source) + ": '" + std::string(url) +
                     "' is not a usable base URL; expected http(s)://host[:port]/path, e.g. " +
                     std::string(kDefaultBaseUrl));
  }
}

std::string resolve_base_url(const std::optional<std::string>& flag, const char* env_value) {
  std::string url;
  std::string_view source;
  if (flag) {
    url = *flag;
    source = "--base-url";
  } else if (env_value && *env_value) {
    url = env_value;
    source = "OPENAI_BASE_URL";
  } else {
    url = kDefaultBaseUrl;
    source = "default base URL";
  }
  url = std::string(trim(url));
  validate_base_url(url, source);
  while (url.ends_with('/')) url.pop_back();
  return url;
}

std::string resolve_api_key(const std::optional<std::filesystem::path>& key_file, const char* env_value) {
  if (key_file) {
    std::string key(trim(read_file(*key_file, FileSource::stream_ok)));
    if (key.empty()) throw InputError("--api-key-file " + key_file->string() + " is empty");
    if (key.find_first_of("\r\n") != std::string::npos) {
      throw InputError("--api-key-file " + key_file->string() +
                       " holds more than one line; it must hold only the key");
    }
    return key;
  }
  return env_value ? std::string(trim(env_value)) : std::string();
}

bool is_loopback(std::string_view url) {
  auto parts = scheme_and_host(url);
  if (!parts) return false;
  const std::string& host = parts->second;
  return host == "localhost" || host.starts_with("127.") || host == "[::1]" || host == "::1";
}

}  // namespace pizza::api
