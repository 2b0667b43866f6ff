#include <catch2/catch.hpp>

#include "hub/helpers.h"
#include "hub/hub.h"

using namespace pizza;
using pizza::test::env_of;

TEST_CASE("parse_repo_id accepts org/name with an optional revision", "[hub]") {
  auto r = hub::parse_repo_id("meta-llama/Llama-3.2-1B");
  REQUIRE(r);
  CHECK(r->repo == "meta-llama/Llama-3.2-1B");
  CHECK(r->revision == "main");

  r = hub::parse_repo_id("org/name@v1");
  REQUIRE(r);
  CHECK(r->repo == "org/name");
  CHECK(r->revision == "v1");

  r = hub::parse_repo_id("org/name@0123456789abcdef0123456789abcdef01234567");
  REQUIRE(r);
  CHECK(r->revision == "0123456789abcdef0123456789abcdef01234567");

  r = hub::parse_repo_id("org/name@refs/pr/3");
  REQUIRE(r);
  CHECK(r->revision == "refs/pr/3");
}

TEST_CASE("parse_repo_id rejects what is not repo-shaped", "[hub]") {
  for (const char* s :
       {"", "name", "/abs/path", "./org/name", "a/b/c", "org/", "/name", "org/name@", "org/na me",
        "org/-name", "org/name.", "org--x/name", "org/na..me", "org/name@../../etc",
        "org/name@a//b", "../org/name", "~/models/x"}) {
    INFO(s);
    CHECK_FALSE(hub::parse_repo_id(s));
  }
}

TEST_CASE("default_cache_dir prefers HF_HUB_CACHE then HF_HOME then XDG_CACHE_HOME then HOME",
          "[hub]") {
  CHECK(hub::default_cache_dir(
            env_of({{"HF_HUB_CACHE", "/c"}, {"HF_HOME", "/h"}, {"HOME", "/home/u"}})) == "/c");
  CHECK(hub::default_cache_dir(env_of({{"HF_HOME", "/h"}, {"HOME", "/home/u"}})) == "/h/hub");
  CHECK(hub::default_cache_dir(env_of({{"XDG_CACHE_HOME", "/x"}, {"HOME", "/home/u"}})) ==
        "/x/huggingface/hub");
  CHECK(hub::default_cache_dir(env_of({{"HOME", "/home/u"}})) == "/home/u/.cache/huggingface/hub");
  // Empty variables count as unset; "~" expands to HOME as in huggingface_hub.
  CHECK(hub::default_cache_dir(env_of(
            {{"HF_HUB_CACHE", ""}, {"HF_HOME", "~/hf"}, {"HOME", "/home/u"}})) == "/home/u/hf/hub");
  CHECK_THROWS_WITH(hub::default_cache_dir(env_of({})), Catch::Contains("HF_HUB_CACHE"));
}
