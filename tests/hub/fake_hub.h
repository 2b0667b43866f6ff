// A local stand-in for the Hugging Face hub (a LoopbackServer: 127.0.0.1, a free port, see
// support/loopback_server.h), so the hub tests never touch the network. It serves one directory as a repo in the hub's URL
// layout /{org}/{name}/resolve/{revision}/{file}, with X-Repo-Commit and ETag headers, 404s
// for missing files, Range support, an optional bearer token, an optional CDN-style redirect
// for *.safetensors, a fault that cuts a response short, and a log of every request.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pizza::test {

class LoopbackServer;

class FakeHub {
 public:
  struct Config {
    std::string repo = "pizza-test/stories260K";
    std::filesystem::path files;                   // served as the repo's content
    std::map<std::string, std::string> revisions;  // revision name -> 40-hex commit
    std::optional<std::string> required_token;     // 401 unless "Authorization: Bearer <it>"
    bool lfs_redirect = false;     // *.safetensors answer 302 -> /cdn/<etag>, as the real hub does
    std::set<std::string> hidden;  // files answered with 404 although present
  };
  struct Request {
    std::string method;
    std::string path;
    std::string range;  // the Range header, "" when absent
    bool has_authorization = false;
  };

  explicit FakeHub(Config config);
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  std::string endpoint() const;
  // The next `times` GETs of `file` each send only `bytes` bytes of body, then drop the
  // connection (an interrupted download). times <= 0 clears the fault.
  void cut_next_get(const std::string& file, size_t bytes, int times = 1);
  // Answer 200 with the whole body even when a Range is asked for (servers may do that).
  void set_ignore_range(bool ignore) { ignore_range_ = ignore; }

  std::vector<Request> requests() const;
  size_t request_count() const;
  // GET requests whose path ends with "/<file>" (resolve or CDN URL of that file).
  std::vector<Request> gets_of(const std::string& file) const;

  // The ETag (blob name) this server gives a file: a hash of its content.
  std::string etag(const std::string& file) const;
  const std::string& content(const std::string& file) const;

 private:
  struct Handlers;
  Config config_;
  std::map<std::string, std::string> contents_;
  std::atomic<bool> ignore_range_{false};
  mutable std::mutex mutex_;
  struct Cut {
    size_t bytes = 0;
    int times = 0;
  };
  std::map<std::string, Cut> cuts_;
  std::unique_ptr<LoopbackServer> http_;  // last: stopped before the state its handlers use
};

}  // namespace pizza::test
