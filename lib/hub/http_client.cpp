#include "hub/http_client.h"

#include "util/curl.h"
#include "util/split.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace fs = std::filesystem;

namespace pizza::hub {

std::string ResponseHead::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

const ResponseHead& HttpResult::final_head() const {
  static const ResponseHead kNone;
  return responses.empty() ? kNone : responses.back();
}

std::string url_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (bytes >= 1024.0 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return buf;
}

// One-line progress bar redrawn in place on stderr (at most ~10 times a second).
class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t start_bytes)
      : label_(std::move(label)), start_bytes_(start_bytes) {}
  ~ProgressBar() {
    if (drawn_) std::fputc('\n', stderr);
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(uint64_t done, std::optional<uint64_t> total, bool force = false) {
    auto now = Clock::now();
    if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    drawn_ = true;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(done - std::min(done, start_bytes_)) / secs : 0;
    std::string line = "\r" + label_ + "  " + human_bytes(static_cast<double>(done));
    if (total && *total > 0) {
      line += " / " + human_bytes(static_cast<double>(*total));
      line += "  " + std::to_string(std::min<uint64_t>(100, done * 100 / *total)) + "%";
    }
    line += "  " + human_bytes(rate) + "/s\x1b[K";  // clear what a longer line left
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  uint64_t start_bytes_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  bool drawn_ = false;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

constexpr size_t kErrorBodyLimit = 2048;

// State shared with the curl callbacks during one request.
struct Transfer {
  HttpResult* result = nullptr;
  // GET only.
  const fs::path* file = nullptr;
  uint64_t resume_from = 0;
  FilePtr out;
  bool decided = false;        // whether the body's destination has been chosen
  bool to_error_body = false;  // non-2xx: keep the body for the error message
  std::string write_error;
  ProgressBar* bar = nullptr;
  std::optional<uint64_t> total;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  std::string_view line = trim(std::string_view(data, size * count));
  if (line.starts_with("HTTP/")) {
    ResponseHead head;
    auto space = line.find(' ');
    if (space != std::string_view::npos)
      head.status = std::strtol(line.data() + space + 1, nullptr, 10);
    t.result->responses.push_back(std::move(head));
  } else if (auto header = parse_header_line(line); header && !t.result->responses.empty()) {
    t.result->responses.back().headers.insert(std::move(*header));
  }
  return size * count;
}

// "bytes <first>-<last>/<total>" -> first.
std::optional<uint64_t> content_range_start(const std::string& value) {
  uint64_t first = 0;
  if (std::sscanf(value.c_str(), "bytes %" SCNu64 "-", &first) != 1) return std::nullopt;
  return first;
}

// Chooses where the body goes once the final response's status is known.
bool decide_destination(Transfer& t) {
  t.decided = true;
  const ResponseHead& head = t.result->final_head();
  const char* mode = nullptr;
  if (head.status == 206) {
    auto start = content_range_start(head.header("content-range"));
    if (!start || *start != t.resume_from) {
      t.write_error = "the server resumed the download at the wrong offset";
      return false;
    }
    mode = "ab";
  } else if (head.status == 200) {
    t.resume_from = 0;  // the server ignored the Range header: start over
    mode = "wb";
  } else {
    t.to_error_body = true;
    return true;
  }
  t.out.reset(std::fopen(t.file->c_str(), mode));
  if (!t.out) {
    t.write_error = "cannot write " + t.file->string() + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t n = size * count;
  if (!t.decided && !decide_destination(t)) return 0;  // 0 aborts the transfer
  if (t.to_error_body) {
    auto& body = t.result->error_body;
    body.append(data, std::min(n, kErrorBodyLimit - std::min(kErrorBodyLimit, body.size())));
    return n;
  }
  if (std::fwrite(data, 1, n, t.out.get()) != n) {
    t.write_error = "cannot write " + t.file->string() + ": " + std::strerror(errno);
    return 0;
  }
  t.result->bytes_written += n;
  return n;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.bar && t.decided && !t.to_error_body) {
    auto total = t.total;
    if (!total && dltotal > 0) total = t.resume_from + static_cast<uint64_t>(dltotal);
    t.bar->update(t.resume_from + static_cast<uint64_t>(dlnow), total);
  }
  return 0;
}

}  // namespace

struct HttpClient::Impl {
  std::string token;
  bool progress = false;
  CurlEasyPtr curl;

  // Prepares the handle for one request; returned header list must outlive perform().
  CurlSlistPtr setup(const std::string& url, Transfer& t, char* errbuf) {
    CURL* h = curl.get();
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pizza/" PIZZA_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    // Never hang: give up on a connection that cannot be made or that stalls for a minute.
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    CurlSlistPtr headers;
    // libcurl does not forward a custom Authorization header to another host on redirect,
    // so the token never reaches the CDN.
    if (!token.empty()) {
      std::string auth = "Authorization: Bearer " + token;
      headers.reset(curl_slist_append(nullptr, auth.c_str()));
      curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    }
    return headers;
  }

  void perform(Transfer& t, char* errbuf) {
    errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK) {
      t.result->transport_ok = false;
      t.result->transport_error =
          !t.write_error.empty() ? t.write_error : (errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
  }
};

HttpClient::HttpClient(std::string token, bool progress) : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->progress = progress;
  impl_->curl.reset(curl_easy_init());
  if (!impl_->curl) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() = default;

HttpResult HttpClient::head(const std::string& url) {
  HttpResult result;
  std::string current = url;
  for (int hop = 0; hop < 10; ++hop) {
    Transfer t;
    t.result = &result;
    char errbuf[CURL_ERROR_SIZE];
    auto headers = impl_->setup(current, t, errbuf);
    curl_easy_setopt(impl_->curl.get(), CURLOPT_NOBODY, 1L);
    impl_->perform(t, errbuf);
    long status = result.status();
    if (!result.transport_ok || status < 300 || status >= 400) return result;
    std::string location = result.final_head().header("location");
    if (!location.starts_with('/') || location.starts_with("//")) return result;
    char* next = nullptr;
    curl_easy_getinfo(impl_->curl.get(), CURLINFO_REDIRECT_URL, &next);
    if (!next) return result;
    current = next;
  }
  result.transport_ok = false;
  result.transport_error = "too many redirects";
  return result;
}

HttpResult HttpClient::get_to_file(const std::string& url, const fs::path& file,
                                   uint64_t resume_from, const std::string& label,
                                   std::optional<uint64_t> total) {
  HttpResult result;
  Transfer t;
  t.result = &result;
  t.file = &file;
  t.resume_from = resume_from;
  t.total = total;
  std::optional<ProgressBar> bar;
  if (impl_->progress) {
    bar.emplace(label, resume_from);
    t.bar = &*bar;
  }
  char errbuf[CURL_ERROR_SIZE];
  auto headers = impl_->setup(url, t, errbuf);
  CURL* h = impl_->curl.get();
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  std::string range = std::to_string(resume_from) + "-";
  if (resume_from > 0) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  if (bar) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  }
  impl_->perform(t, errbuf);
  // An empty 200 body never reaches on_write; the file must still be (re)created.
  if (result.transport_ok && !t.decided && result.status() == 200 && !decide_destination(t)) {
    result.transport_ok = false;
    result.transport_error = t.write_error;
  }
  if (t.out && std::fflush(t.out.get()) != 0 && result.transport_ok) {
    result.transport_ok = false;
    result.transport_error = "cannot write " + file.string() + ": " + std::strerror(errno);
  }
  if (t.out && result.transport_ok) ::fsync(::fileno(t.out.get()));
  if (bar && t.decided && !t.to_error_body)
    bar->update(t.resume_from + result.bytes_written, total, true);
  return result;
}

}  // namespace pizza::hub
