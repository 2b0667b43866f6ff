#include "api/cache.h"
#include "api/config.h"
#include "api/digest.h"
#include "support/paths.h"
#include "util/error.h"

#include <catch2/catch.hpp>

#include <fstream>

using namespace pizza::api;
namespace fs = std::filesystem;

TEST_CASE("cache: key is SHA-256 of base URL, model and body", "[api]") {
  // `printf 'https://x/v1\nm\n{}' | sha256sum`
  CHECK(cache_key("https://x/v1", "m", "{}") ==
        "c1a1c37038997742139ddb7f7bf772fe681835b0842e1bf7404d6a73111a555b");
  CHECK(cache_key("https://x/v1", "m", "{}") != cache_key("https://y/v1", "m", "{}"));
  CHECK(cache_key("https://x/v1", "m", "{}") != cache_key("https://x/v1", "n", "{}"));
}

TEST_CASE("cache: miss, put and hit, sharded and atomic", "[api]") {
  pizza::test::TempDir dir;
  ResponseCache cache(dir / "c");
  std::string key = sha256_hex("k");
  CHECK_FALSE(cache.contains(key));
  CHECK_FALSE(cache.get(key));
  cache.put(key, R"({"a":1})");
  CHECK(cache.path_of(key) == dir / "c" / key.substr(0, 2) / (key + ".json"));
  CHECK(cache.contains(key));
  CHECK(*cache.get(key) == R"({"a":1})");
  cache.put(key, R"({"a":2})");  // replaced whole
  CHECK(*cache.get(key) == R"({"a":2})");
  // Atomic write leaves no temporary file next to the entry.
  size_t files = 0;
  for (auto& e : fs::directory_iterator(cache.path_of(key).parent_path())) {
    CHECK(e.path().filename() == key + ".json");
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("cache: default directory follows XDG", "[api]") {
  CHECK(default_cache_dir("/x/cache", "/home/u") == fs::path("/x/cache/pizza/api"));
  CHECK(default_cache_dir(nullptr, "/home/u") == fs::path("/home/u/.cache/pizza/api"));
  CHECK(default_cache_dir("", "/home/u") == fs::path("/home/u/.cache/pizza/api"));
  CHECK(default_cache_dir("relative", "/home/u") == fs::path("/home/u/.cache/pizza/api"));
  CHECK_THROWS_WITH(default_cache_dir(nullptr, nullptr), Catch::Contains("--cache-dir"));
}

TEST_CASE("config: base URL resolution and validation", "[api]") {
  CHECK(resolve_base_url(std::nullopt, nullptr) == "https://api.openai.com/v1");
  CHECK(resolve_base_url(std::nullopt, "") == "https://api.openai.com/v1");
  CHECK(resolve_base_url(std::nullopt, "http://localhost:8000/v1/") == "http://localhost:8000/v1");
  CHECK(resolve_base_url(std::string("http://127.0.0.1:8080/v1"), "http://ignored/v1") ==
        "http://127.0.0.1:8080/v1");
  CHECK_THROWS_WITH(resolve_base_url(std::string("localhost:8000/v1"), nullptr),
                    Catch::Contains("--base-url"));
  CHECK_THROWS_WITH(resolve_base_url(std::string("ftp://host/v1"), nullptr),
                    Catch::Contains("not a usable base URL"));
  CHECK_THROWS_WITH(resolve_base_url(std::string("https://"), nullptr),
                    Catch::Contains("not a usable base URL"));
  CHECK_THROWS_WITH(resolve_base_url(std::nullopt, "http://a b/v1"), Catch::Contains("OPENAI_BASE_URL"));
  CHECK(is_loopback("http://localhost:8000/v1"));
  CHECK(is_loopback("http://127.0.0.1:8000/v1"));
  CHECK(is_loopback("http://[::1]:8000/v1"));
  CHECK_FALSE(is_loopback("https://api.openai.com/v1"));
}

TEST_CASE("config: API key from file (trimmed) or environment", "[api]") {
  pizza::test::TempDir dir;
  std::ofstream(dir / "key") << "  sk-from-file\n";
  std::ofstream(dir / "empty") << "\n";
  std::ofstream(dir / "two") << "a\nb\n";
  CHECK(resolve_api_key(dir / "key", "sk-env") == "sk-from-file");
  CHECK(resolve_api_key(std::nullopt, "sk-env") == "sk-env");
  CHECK(resolve_api_key(std::nullopt, nullptr).empty());
  CHECK_THROWS_WITH(resolve_api_key(dir / "empty", nullptr), Catch::Contains("is empty"));
  CHECK_THROWS_WITH(resolve_api_key(dir / "two", nullptr), Catch::Contains("more than one line"));
  CHECK_THROWS_AS(resolve_api_key(dir / "missing", nullptr), pizza::InputError);
}
