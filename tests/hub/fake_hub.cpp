#include "hub/fake_hub.h"

#include "support/loopback_server.h"
#include "support/paths.h"

#include <cstdio>

namespace fs = std::filesystem;

namespace pizza::test {
namespace {

// FNV-1a, 64 bit: any stable content hash will do for a blob name.
std::string fnv_hex(const std::string& data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

struct FakeHub::Handlers {
  static std::optional<size_t> take_cut(FakeHub& hub, const std::string& file) {
    std::lock_guard lock(hub.mutex_);
    auto it = hub.cuts_.find(file);
    if (it == hub.cuts_.end()) return std::nullopt;
    size_t n = it->second.bytes;
    if (--it->second.times <= 0) hub.cuts_.erase(it);
    return n;
  }

  static void error(httplib::Response& res, int status, const std::string& code) {
    res.status = status;
    res.set_header("X-Error-Code", code);
    res.set_content(code, "text/plain");
  }

  // The body of `file`, honouring Range (httplib slices a content provider by the request's
  // range and answers 206) unless the hub is told to ignore it, and the pending cut fault.
  static void serve_body(FakeHub& hub, const httplib::Request& req, httplib::Response& res,
                         const std::string& file) {
    const std::string& body = hub.contents_.at(file);
    std::optional<size_t> cut;
    if (req.method == "GET") cut = take_cut(hub, file);
    auto sent = std::make_shared<size_t>(0);
    auto provider = [&body, cut, sent](size_t offset, size_t length, httplib::DataSink& sink) {
      size_t n = std::min<size_t>(length, 16384);
      if (cut) {
        if (*sent >= *cut) return false;  // returning false drops the connection mid-body
        n = std::min(n, *cut - *sent);
      }
      if (!sink.write(body.data() + offset, n)) return false;
      *sent += n;
      return true;
    };
    if (hub.ignore_range_ && !req.ranges.empty()) {
      // A chunked body is never range-sliced by httplib: the whole file with a plain 200.
      res.status = 200;
      res.set_chunked_content_provider("application/octet-stream",
                                       [&body, provider](size_t offset, httplib::DataSink& sink) {
                                         if (offset >= body.size()) {
                                           sink.done();
                                           return true;
                                         }
                                         return provider(offset, body.size() - offset, sink);
                                       });
      return;
    }
    if (body.empty()) {
      res.set_content("", "application/octet-stream");  // a 0-length provider means "no length"
      return;
    }
    res.set_content_provider(body.size(), "application/octet-stream", provider);
  }

  static void resolve(FakeHub& hub, const httplib::Request& req, httplib::Response& res) {
    const Config& cfg = hub.config_;
    if (cfg.required_token &&
        req.get_header_value("Authorization") != "Bearer " + *cfg.required_token) {
      return error(res, 401, "GatedRepo");
    }
    std::string repo = req.matches[1].str() + "/" + req.matches[2].str();
    std::string revision = req.matches[3];
    std::string file = req.matches[4];
    if (repo != cfg.repo) return error(res, 401, "RepositoryNotFound");  // as the real hub answers
    std::string commit;
    for (const auto& [name, hash] : cfg.revisions) {
      if (revision == name || revision == hash) commit = hash;
    }
    if (commit.empty()) return error(res, 404, "RevisionNotFound");
    res.set_header("X-Repo-Commit", commit);
    if (!hub.contents_.count(file) || cfg.hidden.count(file))
      return error(res, 404, "EntryNotFound");
    std::string etag = hub.etag(file);
    if (cfg.lfs_redirect && file.ends_with(".safetensors")) {
      // The real hub: 302 to a CDN, the blob's identity in X-Linked-*, and an ETag of its own
      // that must not be taken for the blob name.
      res.status = 302;
      res.set_header("Location", hub.endpoint() + "/cdn/" + etag + "/" + file);
      res.set_header("X-Linked-Etag", "\"" + etag + "\"");
      res.set_header("X-Linked-Size", std::to_string(hub.contents_.at(file).size()));
      res.set_header("ETag", "\"pointer-file-etag\"");
      return;
    }
    res.set_header("ETag", "W/\"" + etag + "\"");  // weak, as the hub marks small files
    serve_body(hub, req, res, file);
  }

  static void cdn(FakeHub& hub, const httplib::Request& req, httplib::Response& res) {
    std::string file = req.matches[2];
    if (!hub.contents_.count(file) || hub.etag(file) != req.matches[1].str())
      return error(res, 404, "NoSuchKey");
    res.set_header("ETag", "\"cdn-etag-differs\"");
    serve_body(hub, req, res, file);
  }
};

FakeHub::FakeHub(Config config) : config_(std::move(config)), http_(std::make_unique<LoopbackServer>()) {
  if (config_.revisions.empty()) config_.revisions["main"] = std::string(40, 'a');
  for (const auto& entry : fs::directory_iterator(config_.files)) {
    if (entry.is_regular_file()) contents_[entry.path().filename().string()] = slurp(entry.path());
  }
  http_->get(R"(/([^/]+)/([^/]+)/resolve/([^/]+)/(.+))",
             [this](size_t, const httplib::Request& req, httplib::Response& res) { Handlers::resolve(*this, req, res); });
  http_->get(R"(/cdn/([^/]+)/(.+))",
             [this](size_t, const httplib::Request& req, httplib::Response& res) { Handlers::cdn(*this, req, res); });
  http_->start();
}

FakeHub::~FakeHub() = default;

std::string FakeHub::endpoint() const { return http_->origin(); }

void FakeHub::cut_next_get(const std::string& file, size_t bytes, int times) {
  std::lock_guard lock(mutex_);
  if (times > 0) {
    cuts_[file] = {bytes, times};
  } else {
    cuts_.erase(file);
  }
}

std::vector<FakeHub::Request> FakeHub::requests() const {
  std::vector<Request> out;
  for (const auto& r : http_->requests())
    out.push_back({r.method, r.path, r.header("Range"), r.has_header("Authorization")});
  return out;
}

size_t FakeHub::request_count() const { return http_->request_count(); }

std::vector<FakeHub::Request> FakeHub::gets_of(const std::string& file) const {
  std::vector<Request> out;
  for (auto& r : requests()) {
    if (r.method == "GET" && r.path.ends_with("/" + file)) out.push_back(r);
  }
  return out;
}

std::string FakeHub::etag(const std::string& file) const { return fnv_hex(contents_.at(file)); }

const std::string& FakeHub::content(const std::string& file) const { return contents_.at(file); }

}  // namespace pizza::test
