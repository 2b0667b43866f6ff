// Resolution against hand-made huggingface_hub cache layouts (no download involved).
#include <catch2/catch.hpp>
#include <filesystem>
#include <vector>

#include "hub/fake_hub.h"
#include "hub/helpers.h"
#include "hub/hub.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using namespace pizza;
using pizza::test::env_of;
using pizza::test::spit;

namespace {

const std::string kRepo = "pizza-test/stories260K";
const std::string kFolder = "models--pizza-test--stories260K";  // huggingface_hub's naming
const std::string kC1 = "1111111111111111111111111111111111111111";
const std::string kC2 = "2222222222222222222222222222222222222222";
const std::vector<std::string> kModelFiles = {"config.json", "model.safetensors",
                                              "tokenizer.model"};

// Lays out `names` (copied from stories260K) as huggingface_hub does: the content in
// blobs/<id>, and snapshots/<commit>/<name> a relative symlink ../../blobs/<id>.
fs::path make_snapshot(const fs::path& cache, const std::string& commit,
                       const std::vector<std::string>& names) {
  fs::path repo = cache / kFolder;
  fs::path snap = repo / "snapshots" / commit;
  fs::create_directories(snap);
  fs::create_directories(repo / "blobs");
  for (const auto& name : names) {
    std::string blob = "blob-" + commit.substr(0, 4) + "-" + name;
    fs::copy_file(pizza::test::shared("models/stories260K/" + name), repo / "blobs" / blob);
    fs::create_symlink(fs::path("../../blobs") / blob, snap / name);
  }
  return snap;
}

void write_ref(const fs::path& cache, const std::string& ref, const std::string& content) {
  spit(cache / kFolder / "refs" / ref, content);
}

}  // namespace

TEST_CASE("find_in_cache follows refs/<revision> to the snapshot", "[hub]") {
  pizza::test::TempDir tmp;
  fs::path cache = tmp.path();
  fs::path s1 = make_snapshot(cache, kC1, kModelFiles);
  fs::path s2 = make_snapshot(cache, kC2, kModelFiles);
  write_ref(cache, "main", kC1);       // huggingface_hub writes no newline...
  write_ref(cache, "v1", kC2 + "\n");  // ...but a hand-edited ref may have one

  CHECK(hub::find_in_cache({kRepo, "main"}, cache) == s1);
  CHECK(hub::find_in_cache({kRepo, "v1"}, cache) == s2);
  // A commit hash needs no ref.
  CHECK(hub::find_in_cache({kRepo, kC2}, cache) == s2);
  CHECK_FALSE(hub::find_in_cache({kRepo, "v2"}, cache));
  CHECK_FALSE(hub::find_in_cache({kRepo, "3333333333333333333333333333333333333333"}, cache));
  CHECK_FALSE(hub::find_in_cache({"pizza-test/other", "main"}, cache));

  write_ref(cache, "broken", "not-a-commit");
  CHECK_THROWS_WITH(hub::find_in_cache({kRepo, "broken"}, cache), Catch::Contains("refs/broken"));
}

TEST_CASE("find_in_cache wants config + weights + a tokenizer that all resolve", "[hub]") {
  pizza::test::TempDir tmp;
  fs::path cache = tmp.path();
  write_ref(cache, "main", kC1);

  SECTION("no weights") {
    make_snapshot(cache, kC1, {"config.json", "tokenizer.model"});
    CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, cache));
  }
  SECTION("no tokenizer") {
    make_snapshot(cache, kC1, {"config.json", "model.safetensors", "tokenizer_config.json"});
    CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, cache));
  }
  SECTION("a snapshot link whose blob is gone") {
    make_snapshot(cache, kC1, kModelFiles);
    REQUIRE(fs::remove(cache / kFolder / "blobs" / ("blob-1111-model.safetensors")));
    CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, cache));
  }
  SECTION("sharded weights: found only when every shard named by the index is there") {
    fs::path snap = make_snapshot(cache, kC1, {"config.json", "tokenizer.model"});
    spit(
        snap / "model.safetensors.index.json",
        R"({"metadata": {"total_size": 3}, "weight_map": {"a": "model-00001-of-00002.safetensors",)"
        R"( "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
    spit(snap / "model-00001-of-00002.safetensors", "x");
    CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, cache));
    spit(snap / "model-00002-of-00002.safetensors", "y");
    CHECK(hub::find_in_cache({kRepo, "main"}, cache) == snap);
  }
  SECTION("an index naming a file outside the snapshot is refused") {
    fs::path snap = make_snapshot(cache, kC1, {"config.json", "tokenizer.model"});
    spit(snap / "model.safetensors.index.json", R"({"weight_map": {"a": "../../blobs/x"}})");
    CHECK_THROWS_WITH(hub::find_in_cache({kRepo, "main"}, cache), Catch::Contains("../../blobs/x"));
  }
}

TEST_CASE("resolve_model returns local paths unchanged and cached repos without requests",
          "[hub]") {
  pizza::test::TempDir tmp;
  fs::path cache = tmp / "cache";
  fs::path s1 = make_snapshot(cache, kC1, kModelFiles);
  write_ref(cache, "main", kC1);
  pizza::test::FakeHub::Config cfg;
  cfg.files = pizza::test::shared("models/stories260K");
  pizza::test::FakeHub server(cfg);
  hub::HubOptions opts;
  opts.cache_dir = cache;
  opts.endpoint = server.endpoint();
  opts.progress = false;
  auto env = env_of({});

  fs::path dir = pizza::test::shared("models/stories260K");
  CHECK(hub::resolve_model(dir.string(), opts, env) == dir);
  fs::path file = dir / "model.safetensors";
  CHECK(hub::resolve_model(file.string(), opts, env) == file);

  CHECK(hub::resolve_model(kRepo, opts, env) == s1);
  CHECK(hub::resolve_model(kRepo + "@" + kC1, opts, env) == s1);
  CHECK(server.request_count() == 0);

  CHECK_THROWS_WITH(hub::resolve_model("/no/such/model.bin", opts, env),
                    Catch::Contains("/no/such/model.bin") && Catch::Contains("org/name"));
}

TEST_CASE("resolve_model: HF_HUB_CACHE wins over HF_HOME", "[hub]") {
  pizza::test::TempDir tmp;
  fs::path hub_cache = tmp / "hub-cache";
  fs::path home = tmp / "hf-home";
  fs::path from_hub_cache = make_snapshot(hub_cache, kC1, kModelFiles);
  write_ref(hub_cache, "main", kC1);
  fs::path from_home = make_snapshot(home / "hub", kC2, kModelFiles);
  write_ref(home / "hub", "main", kC2);
  hub::HubOptions offline;
  offline.offline = true;
  offline.progress = false;

  CHECK(hub::resolve_model(kRepo, offline,
                           env_of({{"HF_HUB_CACHE", hub_cache.string()},
                                   {"HF_HOME", home.string()}})) == from_hub_cache);
  CHECK(hub::resolve_model(kRepo, offline, env_of({{"HF_HOME", home.string()}})) == from_home);
  // The option overrides both.
  hub::HubOptions explicit_cache = offline;
  explicit_cache.cache_dir = home / "hub";
  CHECK(hub::resolve_model(kRepo, explicit_cache, env_of({{"HF_HUB_CACHE", hub_cache.string()}})) ==
        from_home);
}
