#include "hub/download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "hub/cache_layout.h"
#include "hub/http_client.h"
#include "util/error.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace pizza::hub {
namespace {

// A partially received file is resumed this many times within one call before giving up (the
// .incomplete file stays, so a later call resumes again).
constexpr int kMaxAttempts = 5;

// Exclusive flock on the lock file huggingface_hub uses for the same blob, so concurrent
// pizza and Python downloads of one file do not interleave.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw InputError("cannot create lock file " + path.string() + ": " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        int err = errno;
        ::close(fd_);
        throw InputError("cannot lock " + path.string() + ": " + std::strerror(err));
      }
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

bool exists_no_throw(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

uint64_t size_or_zero(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

std::optional<uint64_t> parse_size(const std::string& s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// `W/"abc"` -> `abc`. The result names a file in blobs/, so anything but a plain token is refused.
std::optional<std::string> blob_name_from_etag(std::string etag) {
  if (etag.starts_with("W/")) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  bool ok = !etag.empty() && etag.size() <= 200 && etag.front() != '.' &&
            std::all_of(etag.begin(), etag.end(), [](unsigned char c) {
              return std::isalnum(c) || c == '-' || c == '_' || c == '.';
            });
  if (!ok) return std::nullopt;
  return etag;
}

// What a HEAD on a resolve URL tells about one file.
struct FileMeta {
  std::string commit;
  std::string blob;
  std::optional<uint64_t> size;
};

class SnapshotDownloader {
 public:
  explicit SnapshotDownloader(const DownloadRequest& req)
      : req_(req),
        repo_dir_(repo_folder(req.cache, req.ref.repo)),
        client_(req.token, req.progress) {}

  fs::path run() {
    if (req_.need == Need::model) fetch_model_files();
    bool tokenizer = false;
    for (auto f : kTokenizerModels) tokenizer = fetch(f, false) || tokenizer;
    if (!tokenizer)
      fail("no tokenizer: none of tokenizer.json, tokenizer.model, vocab.json exists (HTTP 404)");
    for (auto f : kTokenizerExtras) fetch(f, false);
    // The ref goes last: a Python or pizza reader following it finds a complete snapshot.
    if (req_.ref.revision != *commit_) {
      fs::path ref = repo_dir_ / "refs" / req_.ref.revision;
      fs::create_directories(ref.parent_path());
      write_file_atomic(ref, *commit_);
    }
    return snapshot();
  }

 private:
  // config.json, generation_config.json and the safetensors weights (one file or index + shards).
  void fetch_model_files() {
    fetch(kConfigFile, true);
    for (auto f : kOptionalFiles) fetch(f, false);
    if (!fetch(kSingleWeights, false)) {
      if (!fetch(kWeightIndex, false))
        fail("no weights: neither " + std::string(kSingleWeights) + " nor " +
             std::string(kWeightIndex) +
             " exists (HTTP 404); only safetensors checkpoints are supported");
      for (const auto& shard : index_shards(snapshot() / std::string(kWeightIndex)))
        fetch(shard, true);
    }
  }

  const DownloadRequest& req_;
  fs::path repo_dir_;
  HttpClient client_;
  std::optional<std::string> commit_;  // known after the first HEAD

  fs::path snapshot() const { return repo_dir_ / "snapshots" / *commit_; }

  [[noreturn]] void fail(std::string why) const {
    std::string msg =
        "Hugging Face repo '" + req_.ref.repo + "' (revision '" + req_.ref.revision + "'): " + why;
    // Belt and braces: no message may ever carry the token, whatever a server echoes back.
    if (!req_.token.empty()) {
      for (size_t at; (at = msg.find(req_.token)) != std::string::npos;)
        msg.replace(at, req_.token.size(), "<token>");
    }
    throw InputError(msg);
  }

  std::string url_of(std::string_view file) const {
    // After the first file every request names the commit, so a branch moving mid-download
    // cannot mix files from two commits.
    const std::string& rev = commit_ ? *commit_ : req_.ref.revision;
    return req_.endpoint + "/" + req_.ref.repo + "/resolve/" + url_encode(rev, false) + "/" +
           url_encode(file, true);
  }

  [[noreturn]] void fail_http(const HttpResult& r, std::string_view file) const {
    long status = r.status();
    std::string code = r.final_head().header("x-error-code");
    std::string f(file);
    if (status == 401 || status == 403 || code == "GatedRepo") {
      fail(
          "access denied (HTTP " + std::to_string(status) + ") to " + f +
          ": the model may be gated or private (or may not exist); request access on its Hub page, "
          "then set HF_TOKEN or pass --hf-token-file" +
          (req_.token.empty() ? std::string() : " (the token that was sent was not accepted)"));
    }
    if (code == "RepositoryNotFound")
      fail("repository not found (HTTP " + std::to_string(status) + ")");
    if (code == "RevisionNotFound")
      fail("revision not found (HTTP " + std::to_string(status) + ")");
    if (status == 404) fail("file '" + f + "' not found (HTTP 404)");
    fail("HTTP " + std::to_string(status) + " while downloading " + f + " from " + req_.endpoint);
  }

  void check_transport(const HttpResult& r, std::string_view file) const {
    if (!r.transport_ok)
      fail("cannot download " + std::string(file) + " from " + req_.endpoint + ": " +
           r.transport_error);
  }

  // HEAD: status, commit, blob name, size. nullopt for an optional file the repo lacks.
  std::optional<FileMeta> head(std::string_view file, bool required) {
    HttpResult r = client_.head(url_of(file));
    check_transport(r, file);
    const ResponseHead& h = r.final_head();
    std::string code = h.header("x-error-code");
    bool missing_entry =
        r.status() == 404 && code != "RepositoryNotFound" && code != "RevisionNotFound";
    if (missing_entry && !required) return std::nullopt;
    // A final 3xx is the hub pointing a large file at its CDN; the hub's headers describe it.
    if (r.status() < 200 || r.status() >= 400) fail_http(r, file);
    FileMeta meta;
    meta.commit = h.header("x-repo-commit");
    std::string etag = h.header("x-linked-etag");
    auto blob = blob_name_from_etag(etag.empty() ? h.header("etag") : etag);
    if (!blob) fail("the server sent no usable ETag for " + std::string(file));
    meta.blob = *blob;
    std::string size = h.header("x-linked-size");
    if (size.empty() && r.status() == 200) size = h.header("content-length");
    meta.size = parse_size(size);
    return meta;
  }

  // Makes sure `file` is in the snapshot. false: optional and absent from the repo.
  bool fetch(std::string_view file, bool required) {
    if (commit_ && exists_no_throw(snapshot() / std::string(file))) return true;
    auto meta = head(file, required);
    if (!meta) return false;
    if (!commit_) {
      if (is_commit_hash(meta->commit)) {
        commit_ = meta->commit;
      } else if (is_commit_hash(req_.ref.revision)) {
        commit_ = req_.ref.revision;
      } else {
        fail("the server did not report the commit of '" + req_.ref.revision +
             "' (no X-Repo-Commit header)");
      }
      if (exists_no_throw(snapshot() / std::string(file))) return true;
    }
    fs::path blob = repo_dir_ / "blobs" / meta->blob;
    if (!exists_no_throw(blob)) download_blob(file, blob, meta->size);
    link_into_snapshot(snapshot() / std::string(file), blob);
    return true;
  }

  void download_blob(std::string_view file, const fs::path& blob, std::optional<uint64_t> size) {
    fs::create_directories(blob.parent_path());
    fs::path locks = lock_folder(req_.cache, req_.ref.repo);
    fs::create_directories(locks);
    FileLock lock(locks / (blob.filename().string() + ".lock"));
    if (exists_no_throw(blob)) return;  // another process finished it while we waited
    fs::path partial = blob;
    partial += ".incomplete";
    std::string url = url_of(file);
    std::string label = req_.ref.repo + " " + std::string(file);
    for (int attempt = 1;; ++attempt) {
      uint64_t have = size_or_zero(partial);
      if (size && have > *size) {
        fs::remove(partial);  // not a prefix of this blob: start over
        have = 0;
      }
      if (size && have == *size && exists_no_throw(partial)) break;
      HttpResult r = client_.get_to_file(url, partial, have, label, size);
      bool last = attempt >= kMaxAttempts;
      if (r.transport_ok && r.status() == 416 && have > 0 && !last) {
        fs::remove(partial);  // the server cannot resume from here: start over
        continue;
      }
      if (r.transport_ok && r.status() != 200 && r.status() != 206) fail_http(r, file);
      if (!r.transport_ok && (r.bytes_written == 0 || last)) check_transport(r, file);
      uint64_t got = size_or_zero(partial);
      if (r.transport_ok && (!size || got == *size)) break;
      if (size && got > *size) {
        fs::remove(partial);
        fail(std::string(file) + " is larger than announced (" + std::to_string(got) + " > " +
             std::to_string(*size) + " bytes)");
      }
      if (last)
        fail("download of " + std::string(file) + " stopped at " + std::to_string(got) + " of " +
             std::to_string(size.value_or(0)) + " bytes");
      // Cut mid-way with progress made: loop and resume from what arrived.
    }
    fs::rename(partial, blob);
  }

  static void link_into_snapshot(const fs::path& link, const fs::path& blob) {
    fs::create_directories(link.parent_path());
    fs::path target = blob.lexically_relative(link.parent_path());
    std::error_code ec;
    fs::remove(link, ec);  // a dangling link left by an earlier run whose blob is gone
    fs::create_symlink(target, link, ec);
    if (ec && !exists_no_throw(link)) throw fs::filesystem_error("cannot create symlink", link, ec);
  }
};

}  // namespace

fs::path download_snapshot(const DownloadRequest& request) {
  DownloadRequest req = request;
  req.cache = fs::absolute(req.cache).lexically_normal();
  try {
    return SnapshotDownloader(req).run();
  } catch (const fs::filesystem_error& e) {
    throw InputError("Hugging Face repo '" + req.ref.repo + "' (revision '" + req.ref.revision +
                     "'): cannot write to the cache " + req.cache.string() + ": " +
                     e.code().message() + " (" + e.path1().string() + ")");
  }
}

}  // namespace pizza::hub
