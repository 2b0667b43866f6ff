// pizza_fault_proxy: a fault-injecting HTTP proxy for testing `pizza api` against a real
// OpenAI-compatible server (`pizza serve`). It forwards every request to --upstream and, on a
// seeded fraction of them, answers with a fault instead (429 with Retry-After, 500, 503, a
// response slower than the client's timeout, a dropped connection, a truncated JSON body), or
// with 429 insufficient_quota on every request (--quota). --latency-ms adds a fixed delay to
// every request (a remote server's round trip, for the concurrency benchmark). Counters are
// served at GET /__proxy/stats and printed on stderr at exit (SIGINT/SIGTERM).
//
// The schedule is a pure function of (--seed, arrival number): request n is faulted when a
// hash of (seed, n) falls below --fault-rate, and faults take the enabled kinds in turn. No
// request body is faulted more than --max-faults-per-request times, so a client that retries
// more often than that always gets through.
// (CPPHTTPLIB_*_SUPPORT, which Debian's build of the library was compiled with, come from the
// PkgConfig::HTTPLIB target, so every user of the header sees the same class layouts.)
#include <httplib.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

enum class Fault { RateLimit, Error500, Error503, Slow, Drop, Truncated, Quota };

// Names as given to --faults and as reported in the stats.
constexpr std::array<std::pair<Fault, std::string_view>, 7> kFaultNames{{{Fault::RateLimit, "429"},
                                                                         {Fault::Error500, "500"},
                                                                         {Fault::Error503, "503"},
                                                                         {Fault::Slow, "slow"},
                                                                         {Fault::Drop, "drop"},
                                                                         {Fault::Truncated, "truncated"},
                                                                         {Fault::Quota, "quota"}}};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string upstream;  // scheme://host:port
  std::string host = "127.0.0.1";
  int port = 0;
  double fault_rate = 0;
  std::vector<Fault> faults{Fault::RateLimit, Fault::Error500, Fault::Error503, Fault::Slow, Fault::Drop, Fault::Truncated};
  uint64_t seed = 0;
  int latency_ms = 0, slow_ms = 3000, retry_after_s = 1, max_faults_per_request = 2, threads = 64;
  bool quota = false;
};

constexpr std::string_view kUsage =
    "usage: pizza_fault_proxy --upstream http://HOST:PORT [--host 127.0.0.1] [--port 0]\n"
    "         [--fault-rate F] [--faults 429,500,503,slow,drop,truncated] [--seed N]\n"
    "         [--slow-ms 3000] [--retry-after S] [--latency-ms 0] [--max-faults-per-request 2]\n"
    "         [--quota] [--threads 64]\n";

template <class T>
T parse_number(std::string_view flag, std::string_view text, T lo, T hi) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    throw UsageError(std::string(flag) + ": expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], got '" + std::string(text) + "'");
  return v;
}

std::vector<Fault> parse_faults(std::string_view list) {
  std::vector<Fault> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = list.substr(0, comma);
    auto it = std::find_if(kFaultNames.begin(), kFaultNames.end(), [&](const auto& p) { return p.second == item; });
    if (it == kFaultNames.end() || it->first == Fault::Quota)
      throw UsageError("--faults: unknown fault '" + std::string(item) + "' (expected 429, 500, 503, slow, drop, truncated)");
    out.push_back(it->first);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  if (out.empty()) throw UsageError("--faults: empty list");
  return out;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--quota") {
      o.quota = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") throw UsageError("");
    if (i + 1 >= argc) throw UsageError(std::string(flag) + ": missing value (or unknown flag)");
    const std::string_view v = argv[++i];
    if (flag == "--upstream") o.upstream = v;
    else if (flag == "--host") o.host = v;
    else if (flag == "--port") o.port = parse_number<int>(flag, v, 0, 65535);
    else if (flag == "--fault-rate") o.fault_rate = parse_number<double>(flag, v, 0.0, 1.0);
    else if (flag == "--faults") o.faults = parse_faults(v);
    else if (flag == "--seed") o.seed = parse_number<uint64_t>(flag, v, 0, UINT64_MAX);
    else if (flag == "--slow-ms") o.slow_ms = parse_number<int>(flag, v, 0, 600000);
    else if (flag == "--retry-after") o.retry_after_s = parse_number<int>(flag, v, 0, 3600);
    else if (flag == "--latency-ms") o.latency_ms = parse_number<int>(flag, v, 0, 600000);
    else if (flag == "--max-faults-per-request") o.max_faults_per_request = parse_number<int>(flag, v, 0, 1000);
    else if (flag == "--threads") o.threads = parse_number<int>(flag, v, 1, 1024);
    else throw UsageError("unknown flag " + std::string(flag));
  }
  // Paths are forwarded as received, so the upstream is an origin only.
  const auto scheme_end = o.upstream.find("://");
  if (o.upstream.empty() || scheme_end == std::string::npos ||
      o.upstream.find('/', scheme_end + 3) != std::string::npos)
    throw UsageError("--upstream: expected scheme://host:port without a path, got '" + o.upstream + "'");
  return o;
}

// SplitMix64: a well-mixed 64-bit hash, so consecutive arrival numbers get independent draws.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  // Fixed ASCII texts without quotes or backslashes: no escaping needed.
  return R"({"error":{"message":")" + std::string(message) + R"(","type":")" + std::string(type) + R"(","param":null,"code":")" +
         std::string(code) + "\"}}";
}

// The proxy's bookkeeping; every member is guarded by `mutex_`.
class Counters {
 public:
  Counters(const Options& o) : options_(o) {}

  // Records an arrival and decides its fault (nullopt: forward it unchanged).
  std::optional<Fault> arrive(const std::string& key) {
    std::lock_guard lock(mutex_);
    const uint64_t n = received_++;
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    int& faulted = faults_per_body_[std::hash<std::string>{}(key)];
    if (options_.quota) return count(Fault::Quota, faulted);
    const double u = static_cast<double>(mix(options_.seed ^ mix(n)) >> 11) * 0x1.0p-53;  // uniform [0, 1)
    if (u >= options_.fault_rate || faulted >= options_.max_faults_per_request) return std::nullopt;
    return count(options_.faults[scheduled_++ % options_.faults.size()], faulted);
  }
  // The end of a request that arrive() recorded.
  void left() {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }
  void forwarded() {
    std::lock_guard lock(mutex_);
    ++forwarded_;
  }
  void upstream_error() {
    std::lock_guard lock(mutex_);
    ++upstream_errors_;
  }

  std::string json() const {
    std::lock_guard lock(mutex_);
    uint64_t total = 0;
    std::string faults;
    for (const auto& [fault, name] : kFaultNames) {
      auto it = by_kind_.find(fault);
      const uint64_t c = it == by_kind_.end() ? 0 : it->second;
      total += c;
      faults += (faults.empty() ? "\"" : ",\"") + std::string(name) + "\":" + std::to_string(c);
    }
    return "{\"received\":" + std::to_string(received_) + ",\"distinct\":" + std::to_string(faults_per_body_.size()) +
           ",\"forwarded\":" + std::to_string(forwarded_) + ",\"upstream_errors\":" + std::to_string(upstream_errors_) +
           ",\"max_in_flight\":" + std::to_string(max_in_flight_) +
           ",\"faults_total\":" + std::to_string(total) + ",\"faults\":{" + faults + "}}";
  }

 private:
  Fault count(Fault f, int& faulted) {
    ++by_kind_[f];
    ++faulted;
    return f;
  }
  const Options& options_;
  mutable std::mutex mutex_;
  uint64_t received_ = 0, forwarded_ = 0, upstream_errors_ = 0, scheduled_ = 0, in_flight_ = 0, max_in_flight_ = 0;
  std::map<size_t, int> faults_per_body_;  // hash of method + target + body -> faults dealt
  std::map<Fault, uint64_t> by_kind_;
};

struct Upstream {
  int status = 0;
  std::string body, content_type;
  httplib::Headers headers;
};

// Hop-by-hop and framing headers are httplib's business, not relayed.
bool relayed_header(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower != "content-length" && lower != "transfer-encoding" && lower != "connection" && lower != "keep-alive" &&
         lower != "content-type" && lower != "content-encoding";
}

class Proxy {
 public:
  explicit Proxy(Options o) : options_(std::move(o)), counters_(options_) {}

  void handle(const httplib::Request& req, httplib::Response& res) {
    const std::string target = req.target.empty() ? req.path : req.target;
    const auto fault = counters_.arrive(req.method + " " + target + "\n" + req.body);
    struct Leave {
      Counters& c;
      ~Leave() { c.left(); }
    } leave{counters_};
    if (options_.latency_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.latency_ms));
    if (!fault) return relay(forward(req, target), res);
    switch (*fault) {
      case Fault::Quota:
        return reply(res, 429,
                     error_body("You exceeded your current quota, please check your plan and billing details.",
                                "insufficient_quota", "insufficient_quota"));
      case Fault::RateLimit:
        res.set_header("Retry-After", std::to_string(options_.retry_after_s));
        return reply(res, 429, error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded"));
      case Fault::Error500:
        return reply(res, 500, error_body("The server had an error while processing your request", "server_error", "server_error"));
      case Fault::Error503: return reply(res, 503, "upstream connect error or disconnect/reset before headers", "text/plain");
      case Fault::Slow:
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.slow_ms));
        return relay(forward(req, target), res);
      case Fault::Drop: {
        // Content-Length promises the whole body; half is written, then the provider fails,
        // which makes httplib close the connection mid-body.
        auto body = std::make_shared<std::string>(forward(req, target).body);
        res.status = 200;
        res.set_content_provider(body->size(), "application/json", [body](size_t offset, size_t, httplib::DataSink& sink) {
          if (offset > 0) return false;
          sink.write(body->data(), body->size() / 2);
          return true;
        });
        return;
      }
      case Fault::Truncated: {
        // A complete HTTP response whose JSON body is cut in half.
        const auto up = forward(req, target);
        return reply(res, 200, up.body.substr(0, up.body.size() / 2));
      }
    }
  }

  std::string stats() const { return counters_.json(); }

 private:
  Upstream forward(const httplib::Request& req, const std::string& target) {
    httplib::Client client(options_.upstream);
    client.set_connection_timeout(std::chrono::seconds(10));
    client.set_read_timeout(std::chrono::seconds(600));
    client.set_write_timeout(std::chrono::seconds(600));
    httplib::Headers headers;
    for (const char* name : {"Authorization", "Accept", "User-Agent"})
      if (req.has_header(name)) headers.emplace(name, req.get_header_value(name));
    const std::string content_type = req.get_header_value("Content-Type");
    counters_.forwarded();
    auto result = req.method == "POST" ? client.Post(target, headers, req.body, content_type.empty() ? "application/json" : content_type)
                                       : client.Get(target, headers);
    if (!result) {
      counters_.upstream_error();
      return {502, error_body("pizza_fault_proxy: the upstream server did not answer", "proxy_error", "bad_gateway"),
              "application/json", {}};
    }
    return {result->status, result->body, result->get_header_value("Content-Type"), result->headers};
  }

  static void relay(const Upstream& up, httplib::Response& res) {
    for (const auto& [name, value] : up.headers)
      if (relayed_header(name)) res.set_header(name, value);
    reply(res, up.status, up.body, up.content_type.empty() ? "application/json" : up.content_type);
  }

  static void reply(httplib::Response& res, int status, const std::string& body, const std::string& type = "application/json") {
    res.status = status;
    res.set_content(body, type);
  }

  Options options_;
  Counters counters_;
};

int run(const Options& options) {
  // SIGINT/SIGTERM are taken by one thread (sigwait), which stops the server; blocked before
  // httplib starts its workers, so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Proxy proxy(options);
  httplib::Server server;
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };  // httplib owns it
  server.Get("/__proxy/stats", [&proxy](const httplib::Request&, httplib::Response& res) {
    res.set_content(proxy.stats(), "application/json");
  });
  auto handler = [&proxy](const httplib::Request& req, httplib::Response& res) { proxy.handle(req, res); };
  server.Get(".*", handler);
  server.Post(".*", handler);

  const int port = options.port == 0 ? server.bind_to_any_port(options.host) : (server.bind_to_port(options.host, options.port) ? options.port : -1);
  if (port <= 0) {
    std::cerr << "pizza_fault_proxy: error: cannot listen on " << options.host << ":" << options.port << "\n";
    return 1;
  }
  std::atomic<bool> listen_returned{false};
  std::thread stopper([&server, &signals, &listen_returned] {
    int sig = 0;
    sigwait(&signals, &sig);
    // httplib's stop() does nothing before the accept loop runs: a signal right after the
    // ready line must wait for it.
    while (!server.is_running() && !listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.stop();
  });
  std::cerr << "pizza_fault_proxy: listening on http://" << options.host << ":" << port << " (upstream " << options.upstream
            << ")" << std::endl;
  server.listen_after_bind();
  listen_returned = true;
  ::kill(::getpid(), SIGTERM);  // wakes the stopper when listening ended for another reason
  stopper.join();
  std::cerr << "pizza_fault_proxy: stats " << proxy.stats() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_options(argc, argv));
  } catch (const UsageError& e) {
    if (*e.what()) std::cerr << "pizza_fault_proxy: error: " << e.what() << "\n";
    std::cerr << kUsage;
    return 2;
  }
}
