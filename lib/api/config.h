// Where to send requests and with which key: --base-url / OPENAI_BASE_URL and
// OPENAI_API_KEY / --api-key-file. Functions take the environment values as arguments so the
// caller reads the environment once and tests need no setenv.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::api {

inline constexpr std::string_view kDefaultBaseUrl = "https://api.openai.com/v1";

// --base-url, else OPENAI_BASE_URL (env_value), else the OpenAI API. Validated (http or https,
// a host) and returned without a trailing slash; InputError naming the source otherwise.
std::string resolve_base_url(const std::optional<std::string>& flag, const char* env_value);

// Throws InputError naming `source` unless `url` is an http(s) URL with a host.
void validate_base_url(std::string_view url, std::string_view source);

// --api-key-file (its contents trimmed of surrounding whitespace) wins over OPENAI_API_KEY
// (env_value). "" when neither: allowed (local servers need none); a 401 then says what to set.
// The key is never part of an error message.
std::string resolve_api_key(const std::optional<std::filesystem::path>& key_file, const char* env_value);

// Whether the URL's host is loopback (localhost, 127.x.x.x, ::1), where a missing key is normal.
bool is_loopback(std::string_view url);

}  // namespace pizza::api
