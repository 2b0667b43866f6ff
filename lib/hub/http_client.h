// A small libcurl (easy interface) client for the hub's resolve URLs (internal to pizza_hub).
// The bearer token only ever goes into the Authorization header; it is never part of a URL,
// a log line or an error message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pizza::hub {

// One HTTP response of a request (a request that follows redirects has several).
struct ResponseHead {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; first value kept

  // The value of a header, or "" when absent. `name` must be lower case.
  std::string header(const std::string& name) const;
};

struct HttpResult {
  bool transport_ok = true;     // false: curl failed (DNS, refused, cut connection, timeout...)
  std::string transport_error;  // curl's message when !transport_ok
  std::vector<ResponseHead> responses;  // in order received; back() is the final one
  std::string error_body;               // start of the body of a non-2xx final response
  uint64_t bytes_written = 0;           // body bytes written to the file by this request

  long status() const { return responses.empty() ? 0 : responses.back().status; }
  const ResponseHead& final_head() const;
};

class HttpClient {
 public:
  // `token` empty: no Authorization header. `progress`: draw a progress bar on stderr during
  // downloads (the caller decides whether stderr is a terminal).
  HttpClient(std::string token, bool progress);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // HEAD that follows only same-host relative redirects (a renamed repo) and stops at an
  // absolute one (the CDN for large files, whose signed URLs may refuse HEAD): the hub's
  // own response carries X-Repo-Commit, X-Linked-Etag and X-Linked-Size.
  HttpResult head(const std::string& url);

  // GET following redirects. The body of a 200 replaces `file`; with `resume_from` > 0 a
  // `Range: bytes=<resume_from>-` header is sent and a 206 body is appended (a 200 means the
  // server ignored the range, so the file restarts). `label` and `total` feed the progress bar.
  HttpResult get_to_file(const std::string& url, const std::filesystem::path& file,
                         uint64_t resume_from, const std::string& label,
                         std::optional<uint64_t> total);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash).
std::string url_encode(std::string_view s, bool keep_slash);

}  // namespace pizza::hub
