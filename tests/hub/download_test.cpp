// Downloads from a local fake hub (tests/hub/fake_hub.h) into a temporary cache.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "hub/fake_hub.h"
#include "hub/helpers.h"
#include "hub/hub.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using namespace pizza;
using pizza::test::env_of;
using pizza::test::error_of;
using pizza::test::FakeHub;
using pizza::test::slurp;
using pizza::test::spit;

namespace {

const std::string kRepo = "pizza-test/stories260K";
const std::string kFolder = "models--pizza-test--stories260K";
const std::string kMain = "0123456789abcdef0123456789abcdef01234567";
const std::string kV1 = "fedcba9876543210fedcba9876543210fedcba98";

// Every file of the stories260K directory pizza needs; LICENSE is not among them.
const std::set<std::string> kWanted = {"config.json",       "generation_config.json",
                                       "model.safetensors", "special_tokens_map.json",
                                       "tokenizer.model",   "tokenizer_config.json"};

FakeHub::Config stories() {
  FakeHub::Config c;
  c.files = pizza::test::shared("models/stories260K");
  c.revisions = {{"main", kMain}, {"v1", kV1}};
  return c;
}

hub::HubOptions opts_for(const std::string& endpoint, const fs::path& cache) {
  hub::HubOptions o;
  o.cache_dir = cache;
  o.endpoint = endpoint;
  o.offline = false;  // whatever the environment running the tests says
  o.progress = false;
  return o;
}

hub::HubOptions opts_for(const FakeHub& server, const fs::path& cache) {
  return opts_for(server.endpoint(), cache);
}

std::set<std::string> dir_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// The snapshot holds exactly `wanted`, each a link ../../blobs/<server's etag> whose content
// is byte-identical to the served original, and no partial file is left in blobs/.
void check_snapshot(const FakeHub& server, const fs::path& cache, const std::string& commit,
                    const std::set<std::string>& wanted) {
  fs::path repo = cache / kFolder;
  fs::path snap = repo / "snapshots" / commit;
  CHECK(dir_names(snap) == wanted);
  for (const auto& name : wanted) {
    INFO(name);
    REQUIRE(fs::is_symlink(snap / name));
    CHECK(fs::read_symlink(snap / name) == fs::path("../../blobs") / server.etag(name));
    bool identical = slurp(snap / name) == slurp(pizza::test::shared("models/stories260K/" + name));
    CHECK(identical);
  }
  for (const auto& blob : dir_names(repo / "blobs")) CHECK_FALSE(blob.ends_with(".incomplete"));
}

}  // namespace

TEST_CASE("download stories260K into the cache layout huggingface_hub writes", "[hub]") {
  FakeHub server(stories());
  pizza::test::TempDir tmp;
  auto opts = opts_for(server, tmp.path());

  fs::path snap = hub::resolve_model(kRepo, opts, env_of({}));
  CHECK(snap == tmp.path() / kFolder / "snapshots" / kMain);
  check_snapshot(server, tmp.path(), kMain, kWanted);
  CHECK(slurp(tmp.path() / kFolder / "refs" / "main") == kMain);
  // No request ever named LICENSE: only the needed files are fetched.
  for (const auto& r : server.requests()) CHECK(r.path.find("LICENSE") == std::string::npos);

  size_t before = server.request_count();
  CHECK(hub::resolve_model(kRepo, opts, env_of({})) == snap);
  CHECK(server.request_count() == before);  // the second resolve is served by the cache alone
}

TEST_CASE("a tokenizer-only resolve fetches no weights; a later model resolve completes it", "[hub]") {
  FakeHub server(stories());
  pizza::test::TempDir tmp;
  auto opts = opts_for(server, tmp.path());
  opts.need = hub::Need::tokenizer;

  fs::path snap = hub::resolve_model(kRepo, opts, env_of({}));
  check_snapshot(server, tmp.path(), kMain,
                 {"special_tokens_map.json", "tokenizer.model", "tokenizer_config.json"});
  for (const auto& r : server.requests()) {
    INFO(r.path);
    CHECK(r.path.find("safetensors") == std::string::npos);
    const bool model_config = r.path.ends_with("/config.json");
    CHECK_FALSE(model_config);
  }
  // The tokenizer alone is enough for a tokenizer resolve, but not for a model resolve.
  size_t before = server.request_count();
  CHECK(hub::resolve_model(kRepo, opts, env_of({})) == snap);
  CHECK(server.request_count() == before);
  CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, tmp.path()));

  opts.need = hub::Need::model;
  CHECK(hub::resolve_model(kRepo, opts, env_of({})) == snap);
  check_snapshot(server, tmp.path(), kMain, kWanted);
}

TEST_CASE("download a tag and a commit with HF_ENDPOINT and HF_HUB_CACHE from the environment",
          "[hub]") {
  FakeHub server(stories());
  pizza::test::TempDir tmp;
  auto env =
      env_of({{"HF_ENDPOINT", server.endpoint() + "/"}, {"HF_HUB_CACHE", tmp.path().string()}});
  hub::HubOptions opts;
  opts.progress = false;

  CHECK(hub::resolve_model(kRepo + "@v1", opts, env) == tmp.path() / kFolder / "snapshots" / kV1);
  CHECK(slurp(tmp.path() / kFolder / "refs" / "v1") == kV1);
  check_snapshot(server, tmp.path(), kV1, kWanted);

  // Same content under another commit: the blobs are shared, only the links are new, and a
  // commit revision writes no ref.
  size_t before = server.gets_of("model.safetensors").size();
  CHECK(hub::resolve_model(kRepo + "@" + kMain, opts, env) ==
        tmp.path() / kFolder / "snapshots" / kMain);
  CHECK(server.gets_of("model.safetensors").size() == before);
  CHECK(dir_names(tmp.path() / kFolder / "refs") == std::set<std::string>{"v1"});
  check_snapshot(server, tmp.path(), kMain, kWanted);
}

TEST_CASE("large files behind a CDN redirect are named by X-Linked-Etag", "[hub]") {
  auto cfg = stories();
  cfg.lfs_redirect = true;
  FakeHub server(cfg);
  pizza::test::TempDir tmp;
  hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({}));
  check_snapshot(server, tmp.path(), kMain, kWanted);
  // GET follows the redirect; HEAD stops at it (a signed CDN URL may refuse HEAD).
  auto gets = server.gets_of("model.safetensors");
  REQUIRE(gets.size() == 2);
  CHECK(gets[0].path == "/" + kRepo + "/resolve/" + kMain + "/model.safetensors");
  CHECK(gets[1].path == "/cdn/" + server.etag("model.safetensors") + "/model.safetensors");
  for (const auto& r : server.requests()) {
    if (r.method == "HEAD") CHECK_FALSE(r.path.starts_with("/cdn/"));
  }
}

TEST_CASE("a missing required file is a clear error naming repo + revision + file", "[hub]") {
  pizza::test::TempDir tmp;
  for (const std::string hidden : {"config.json", "model.safetensors", "tokenizer.model"}) {
    INFO(hidden);
    auto cfg = stories();
    cfg.hidden = {hidden};
    FakeHub server(cfg);
    std::string msg =
        error_of([&] { hub::resolve_model(kRepo, opts_for(server, tmp / hidden), env_of({})); });
    CHECK_THAT(msg, Catch::Contains(kRepo) && Catch::Contains("main"));
    CHECK_THAT(msg, Catch::Contains(hidden == "tokenizer.model" ? "tokenizer" : hidden));
    // Nothing resolvable was left behind.
    CHECK_FALSE(hub::find_in_cache({kRepo, "main"}, tmp / hidden));
    CHECK_FALSE(fs::exists(tmp / hidden / kFolder / "refs" / "main"));
  }
  FakeHub server(stories());
  CHECK_THAT(error_of([&] {
               hub::resolve_model(kRepo + "@v9", opts_for(server, tmp / "v9"), env_of({}));
             }),
             Catch::Contains("revision not found") && Catch::Contains("v9"));
}

TEST_CASE("sharded weights: the index and every shard it names", "[hub]") {
  // A repo served from a temp dir: the stories260K bytes split into two "shards" (the hub
  // does not look inside them, so any bytes will do for checking the transfer).
  pizza::test::TempDir tmp;
  fs::path src = tmp / "repo";
  std::string weights = slurp(pizza::test::shared("models/stories260K/model.safetensors"));
  for (const std::string f : {"config.json", "tokenizer.model"})
    spit(src / f, slurp(pizza::test::shared("models/stories260K/" + f)));
  spit(src / "model-00001-of-00002.safetensors", weights.substr(0, 1000));
  spit(src / "model-00002-of-00002.safetensors", weights.substr(1000));
  spit(src / "merges.txt", "");  // an empty file is a file too
  spit(src / "model.safetensors.index.json",
       R"({"metadata": {}, "weight_map": {"x": "model-00002-of-00002.safetensors",)"
       R"( "y": "model-00001-of-00002.safetensors"}})");

  FakeHub::Config cfg;
  cfg.files = src;
  cfg.revisions = {{"main", kMain}};
  SECTION("all shards") {
    FakeHub server(cfg);
    fs::path snap = hub::resolve_model(kRepo, opts_for(server, tmp / "cache"), env_of({}));
    CHECK(fs::is_regular_file(snap / "merges.txt"));
    CHECK(fs::file_size(snap / "merges.txt") == 0);
    CHECK(dir_names(snap) == std::set<std::string>{"config.json", "tokenizer.model", "merges.txt",
                                                   "model.safetensors.index.json",
                                                   "model-00001-of-00002.safetensors",
                                                   "model-00002-of-00002.safetensors"});
    bool identical = slurp(snap / "model-00001-of-00002.safetensors") +
                         slurp(snap / "model-00002-of-00002.safetensors") ==
                     weights;
    CHECK(identical);
  }
  SECTION("a missing shard") {
    cfg.hidden = {"model-00002-of-00002.safetensors"};
    FakeHub server(cfg);
    CHECK_THAT(
        error_of([&] { hub::resolve_model(kRepo, opts_for(server, tmp / "cache"), env_of({})); }),
        Catch::Contains("model-00002-of-00002.safetensors") && Catch::Contains("404"));
  }
}

TEST_CASE("an interrupted download resumes with a Range request", "[hub]") {
  const std::string original = slurp(pizza::test::shared("models/stories260K/model.safetensors"));
  pizza::test::TempDir tmp;

  SECTION("cut mid-transfer: resumed within the same resolve") {
    FakeHub server(stories());
    server.cut_next_get("model.safetensors", 100000);
    hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({}));
    auto gets = server.gets_of("model.safetensors");
    REQUIRE(gets.size() == 2);
    CHECK(gets[0].range.empty());
    CHECK(gets[1].range == "bytes=100000-");
    check_snapshot(server, tmp.path(), kMain, kWanted);
  }
  SECTION("cut on every attempt: an error, the partial blob kept, nothing in snapshots/") {
    FakeHub server(stories());
    server.cut_next_get("model.safetensors", 1000, 100);
    std::string msg =
        error_of([&] { hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({})); });
    CHECK_THAT(msg, Catch::Contains("model.safetensors") && Catch::Contains(kRepo));
    fs::path snap = tmp.path() / kFolder / "snapshots" / kMain;
    CHECK_FALSE(fs::exists(snap / "model.safetensors"));
    CHECK_FALSE(fs::exists(tmp.path() / kFolder / "refs" / "main"));
    // Each of the 5 attempts (kMaxAttempts in download.cpp) appended 1000 bytes.
    size_t attempts = server.gets_of("model.safetensors").size();
    CHECK(attempts == 5);
    fs::path partial =
        tmp.path() / kFolder / "blobs" / (server.etag("model.safetensors") + ".incomplete");
    bool prefix = slurp(partial) == original.substr(0, 1000 * attempts);
    CHECK(prefix);

    // The next run picks up where this one stopped.
    server.cut_next_get("model.safetensors", 0, 0);
    hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({}));
    CHECK(server.gets_of("model.safetensors").back().range ==
          "bytes=" + std::to_string(1000 * attempts) + "-");
    check_snapshot(server, tmp.path(), kMain, kWanted);
  }
  SECTION("a .incomplete left by an earlier process") {
    FakeHub server(stories());
    fs::path partial =
        tmp.path() / kFolder / "blobs" / (server.etag("model.safetensors") + ".incomplete");
    spit(partial, original.substr(0, 5000));
    hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({}));
    auto gets = server.gets_of("model.safetensors");
    REQUIRE(gets.size() == 1);
    CHECK(gets[0].range == "bytes=5000-");
    CHECK_FALSE(fs::exists(partial));
    check_snapshot(server, tmp.path(), kMain, kWanted);
  }
  SECTION("a server that ignores Range (200) restarts the file") {
    FakeHub server(stories());
    server.set_ignore_range(true);
    fs::path partial =
        tmp.path() / kFolder / "blobs" / (server.etag("model.safetensors") + ".incomplete");
    spit(partial, std::string(5000, 'z'));  // wrong bytes: would survive if appended to
    hub::resolve_model(kRepo, opts_for(server, tmp.path()), env_of({}));
    CHECK(server.gets_of("model.safetensors").at(0).range == "bytes=5000-");
    check_snapshot(server, tmp.path(), kMain, kWanted);
  }
  SECTION("an unreachable server: curl's error, nothing in snapshots/") {
    std::string endpoint;
    {
      FakeHub dead(stories());
      endpoint = dead.endpoint();
    }
    auto opts = opts_for(endpoint, tmp.path());
    std::string msg = error_of([&] { hub::resolve_model(kRepo, opts, env_of({})); });
    CHECK_THAT(msg, Catch::Contains("cannot download config.json") && Catch::Contains(endpoint) &&
                        Catch::Contains("connect", Catch::CaseSensitive::No));
    CHECK_FALSE(fs::exists(tmp.path() / kFolder / "snapshots"));
  }
}

TEST_CASE("offline mode never touches the network", "[hub]") {
  FakeHub server(stories());
  pizza::test::TempDir tmp;
  auto opts = opts_for(server, tmp.path());
  opts.offline.reset();
  auto env = env_of({{"HF_HUB_OFFLINE", "1"}});
  CHECK_THAT(error_of([&] { hub::resolve_model(kRepo, opts, env); }),
             Catch::Contains("offline mode is on") && Catch::Contains(kRepo));
  opts.offline = true;
  CHECK_THAT(error_of([&] { hub::resolve_model(kRepo, opts, env_of({})); }),
             Catch::Contains("offline mode is on"));
  opts.offline = false;
  opts.allow_download = false;
  CHECK_THAT(error_of([&] { hub::resolve_model(kRepo, opts, env_of({})); }),
             Catch::Contains("downloading is disabled"));
  CHECK(server.request_count() == 0);

  // The option overrides the environment.
  opts.offline = false;
  opts.allow_download = true;
  CHECK(fs::exists(hub::resolve_model(kRepo, opts, env)));
}

TEST_CASE("gated repos: 401 mentions HF_TOKEN and never the token", "[hub]") {
  const std::string good = "hf_GoodTokenValue0123456789";
  const std::string bad = "hf_WrongTokenValue987654321";
  auto cfg = stories();
  cfg.required_token = good;
  FakeHub server(cfg);
  pizza::test::TempDir tmp;
  auto opts = opts_for(server, tmp / "cache");

  std::string anonymous = error_of([&] { hub::resolve_model(kRepo, opts, env_of({})); });
  CHECK_THAT(anonymous,
             Catch::Contains("HF_TOKEN") && Catch::Contains("gated") && Catch::Contains("401"));

  std::string from_env = error_of([&] {
    hub::resolve_model(kRepo, opts, env_of({{"HF_TOKEN", bad}}));
  });
  CHECK_THAT(from_env, Catch::Contains("HF_TOKEN") && !Catch::Contains(bad));

  spit(tmp / "token", bad + "\n");
  opts.token_file = tmp / "token";
  std::string from_file = error_of([&] { hub::resolve_model(kRepo, opts, env_of({})); });
  CHECK_THAT(from_file, Catch::Contains("--hf-token-file") && !Catch::Contains(bad));

  // The right token, from the file (which wins over HF_TOKEN), opens the repo.
  spit(tmp / "token", good + "\n");
  hub::resolve_model(kRepo, opts, env_of({{"HF_TOKEN", bad}}));
  check_snapshot(server, tmp / "cache", kMain, kWanted);
  for (const auto& r : server.requests()) {
    if (r.path.find("/resolve/") != std::string::npos && r.method == "GET")
      CHECK(r.has_authorization);
  }

  spit(tmp / "empty", "\n");
  opts.token_file = tmp / "empty";
  CHECK_THROWS_WITH(hub::resolve_model(kRepo + "@v1", opts, env_of({})), Catch::Contains("empty"));
}
