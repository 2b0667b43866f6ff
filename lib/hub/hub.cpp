#include "hub/hub.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "hub/cache_layout.h"
#include "hub/download.h"
#include "util/error.h"
#include "util/file.h"
#include "util/split.h"

namespace fs = std::filesystem;

namespace pizza::hub {
namespace {

constexpr std::string_view kDefaultEndpoint = "https://huggingface.co";

std::optional<std::string> get(const EnvLookup& env, const std::string& name) {
  auto v = env(name);
  if (v && v->empty()) return std::nullopt;  // an empty variable counts as unset
  return v;
}

// "~/x" -> "$HOME/x", as huggingface_hub expands HF_HOME and HF_HUB_CACHE.
fs::path expand_user(const std::string& p, const EnvLookup& env) {
  if (p == "~" || p.starts_with("~/")) {
    if (auto home = get(env, "HOME"))
      return fs::path(*home) / p.substr(std::min<size_t>(2, p.size()));
  }
  return p;
}

std::optional<fs::path> hf_home(const EnvLookup& env) {
  if (auto v = get(env, "HF_HOME")) return expand_user(*v, env);
  if (auto v = get(env, "XDG_CACHE_HOME")) return expand_user(*v, env) / "huggingface";
  if (auto v = get(env, "HOME")) return fs::path(*v) / ".cache" / "huggingface";
  return std::nullopt;
}

bool truthy(std::optional<std::string> v) {
  if (!v) return false;
  std::string s = *v;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s == "1" || s == "ON" || s == "YES" || s == "TRUE";
}

// Repo id parts follow the hub's rules: [A-Za-z0-9_.-], not starting or ending with '.' or
// '-', no "--" (the cache folder separator) or "..".
bool valid_name_part(std::string_view s) {
  if (s.empty()) return false;
  bool chars = std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
  auto edge = [](char c) { return c == '.' || c == '-'; };
  return chars && !edge(s.front()) && !edge(s.back()) && s.find("--") == std::string_view::npos &&
         s.find("..") == std::string_view::npos;
}

// Reads a token file. Messages name the file, never its content.
std::string read_token_file(const fs::path& path) {
  std::string token(trim(read_file(path, FileSource::stream_ok)));
  if (token.empty()) throw InputError("Hugging Face token file " + path.string() + " is empty");
  bool printable =
      std::all_of(token.begin(), token.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
  if (!printable) {
    throw InputError("Hugging Face token file " + path.string() +
                     " must hold one token on one line");
  }
  return token;
}

// --hf-token-file, else $HF_TOKEN, else the token `huggingface-cli login` stored.
std::string resolve_token(const HubOptions& options, const EnvLookup& env) {
  if (options.token_file) return read_token_file(*options.token_file);
  if (auto t = get(env, "HF_TOKEN")) {
    std::string token(trim(*t));
    if (!token.empty()) return token;
  }
  std::optional<fs::path> stored;
  if (auto p = get(env, "HF_TOKEN_PATH")) {
    stored = expand_user(*p, env);
  } else if (auto home = hf_home(env)) {
    stored = *home / "token";
  }
  std::error_code ec;
  if (stored && fs::is_regular_file(*stored, ec)) return read_token_file(*stored);
  return {};
}

std::string resolve_endpoint(const HubOptions& options, const EnvLookup& env) {
  std::string e = options.endpoint
                      ? *options.endpoint
                      : get(env, "HF_ENDPOINT").value_or(std::string(kDefaultEndpoint));
  while (!e.empty() && e.back() == '/') e.pop_back();
  if (!e.starts_with("http://") && !e.starts_with("https://")) {
    throw InputError("Hugging Face endpoint '" + e + "' must start with http:// or https://");
  }
  return e;
}

}  // namespace

EnvLookup system_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::optional<RepoRef> parse_repo_id(std::string_view spec) {
  RepoRef ref{std::string(spec), "main"};
  if (auto at = spec.find('@'); at != std::string_view::npos) {
    ref.repo = std::string(spec.substr(0, at));
    ref.revision = std::string(spec.substr(at + 1));
    if (!is_safe_repo_file(ref.revision) ||
        std::any_of(ref.revision.begin(), ref.revision.end(),
                    [](unsigned char c) { return std::isspace(c); }))
      return std::nullopt;
  }
  auto slash = ref.repo.find('/');
  if (slash == std::string::npos || ref.repo.size() > 96) return std::nullopt;
  std::string_view org = std::string_view(ref.repo).substr(0, slash);
  std::string_view name = std::string_view(ref.repo).substr(slash + 1);
  if (!valid_name_part(org) || !valid_name_part(name)) return std::nullopt;
  return ref;
}

fs::path default_cache_dir(const EnvLookup& env) {
  if (auto v = get(env, "HF_HUB_CACHE")) return expand_user(*v, env);
  if (auto home = hf_home(env)) return *home / "hub";
  throw InputError("cannot locate the Hugging Face cache: set HF_HUB_CACHE, HF_HOME or HOME");
}

fs::path default_cache_dir() { return default_cache_dir(system_env()); }

std::optional<fs::path> find_in_cache(const RepoRef& ref, const fs::path& cache, Need need) {
  if (!parse_repo_id(ref.repo + "@" + ref.revision)) {
    throw InputError("invalid Hugging Face repo id '" + ref.repo + "@" + ref.revision + "'");
  }
  fs::path repo_dir = repo_folder(cache, ref.repo);
  auto commit = read_ref(repo_dir, ref.revision);
  if (!commit) return std::nullopt;
  fs::path snapshot = repo_dir / "snapshots" / *commit;
  if (!snapshot_complete(snapshot, need)) return std::nullopt;
  return snapshot;
}

fs::path resolve_model(std::string_view spec, const HubOptions& options, const EnvLookup& env) {
  if (spec.empty())
    throw InputError(
        "--model is empty: give a local path or a Hugging Face repo id org/name[@revision]");
  fs::path local{std::string(spec)};
  std::error_code ec;
  if (fs::exists(local, ec)) return local;
  auto ref = parse_repo_id(spec);
  if (!ref) {
    throw InputError(
        "model '" + std::string(spec) +
        "' is neither an existing path nor a Hugging Face repo id (org/name[@revision])");
  }
  fs::path cache = fs::absolute(options.cache_dir ? *options.cache_dir : default_cache_dir(env));
  if (auto found = find_in_cache(*ref, cache, options.need)) return *found;

  std::string what = "model '" + ref->repo + "@" + ref->revision +
                     "' is not a local path and is not (complete) in the Hugging Face cache " +
                     cache.string();
  bool offline = options.offline.value_or(truthy(get(env, "HF_HUB_OFFLINE")));
  if (offline)
    throw InputError(
        what +
        ", and offline mode is on (HF_HUB_OFFLINE or --offline): download it while online first");
  if (!options.allow_download) throw InputError(what + ", and downloading is disabled");

  DownloadRequest req;
  req.ref = *ref;
  req.cache = cache;
  req.endpoint = resolve_endpoint(options, env);
  req.token = resolve_token(options, env);
  req.progress = options.progress && ::isatty(STDERR_FILENO) == 1;
  req.need = options.need;
  return download_snapshot(req);
}

fs::path resolve_model(std::string_view spec, const HubOptions& options) {
  return resolve_model(spec, options, system_env());
}

}  // namespace pizza::hub
