// `pizza serve` under clients that are slow, many or too many: slow clients cannot keep others
// waiting, a request must arrive within its header and body deadlines (else 408 and the
// connection closes), and requests or connections over their bounds are refused at once with
// 503 and Retry-After, each in OpenAI's error shape.
#include <torch/torch.h>  // before Catch: see serve_support.h

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "serve_support.h"
#include "support/raw_client.h"

using namespace pizza;
using namespace std::chrono_literals;
using test::RawConnection;

namespace {

constexpr const char* kQuickRequest = R"({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0})";
constexpr const char* kLongRequest = R"({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0})";

// kQuickRequest on a new connection, allowing 30 s where milliseconds are expected; REQUIREs
// that an HTTP answer came back.
httplib::Result quick_post(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(30, 0);
  auto res = cli.Post("/v1/completions", kQuickRequest, "application/json");
  INFO("error: " << (res ? "" : httplib::to_string(res.error())));
  REQUIRE(res);
  return res;
}

// An OpenAI error object with this code.
void check_error(const std::string& body, const std::string& code) {
  INFO("body: " << body);
  auto j = test::parse_json(body);
  CHECK(test::shape_mismatch(j->root, test::kErrorShape).empty());
  simdjson::dom::element c;
  REQUIRE(j->root["error"]["code"].get(c) == simdjson::SUCCESS);
  CHECK(c.is_string());
  if (c.is_string()) CHECK(std::string_view(c) == code);
}

// A request cut off by a read deadline: 408 request_timeout, then the server closes.
void check_timed_out(RawConnection& conn) {
  INFO("received: " << conn.received());
  CHECK_THAT(conn.received(), Catch::StartsWith("HTTP/1.1 408 "));
  CHECK(conn.wait_closed(0ms));
  check_error(conn.body(), "request_timeout");
}

// A request that has sent its line and sends one more header line every `every`, on its own
// thread, until the server answers or closes, `limit` passes, or finish() is called.
class TricklingHeaders {
 public:
  TricklingHeaders(int port, std::chrono::milliseconds every, std::chrono::seconds limit) : conn_(port) {
    conn_.send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    thread_ = std::thread([this, every, limit] {
      const auto end = std::chrono::steady_clock::now() + limit;
      for (int line = 0; std::chrono::steady_clock::now() < end; ++line) {
        // Short waits: finish() is noticed at once.
        for (const auto next = std::chrono::steady_clock::now() + every; std::chrono::steady_clock::now() < next;)
          if (stop_ || conn_.wait_closed(100ms)) return;
        if (!conn_.send("X-Slow-" + std::to_string(line) + ": 1\r\n")) return;
      }
    });
  }
  ~TricklingHeaders() { finish(); }
  // Stops sending and waits for the thread; then connection() is safe to use.
  void finish() {
    stop_ = true;
    join();
  }
  // Waits for the thread to end by itself (the server closed, or `limit` passed).
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  RawConnection& connection() { return conn_; }

 private:
  RawConnection conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("sixteen slow clients trickling headers cannot keep a normal client waiting") {
  // The pool of 16 handler threads used to be held by them for as long as they kept sending (a
  // line every 2 s never trips a per-read timeout), so nobody else was answered.
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.header_timeout = 120s;  // no deadline frees them during the test: only the design can
  test::RunningServer srv(*lm, opts);
  std::vector<std::unique_ptr<TricklingHeaders>> slow;
  for (int i = 0; i < 20; ++i) slow.push_back(std::make_unique<TricklingHeaders>(srv.port(), 2s, 60s));
  std::this_thread::sleep_for(500ms);  // the server has accepted them all

  auto res = quick_post(srv.port());
  CHECK(res->status == 200);
  for (auto& s : slow) s->finish();
  for (auto& s : slow) CHECK(s->connection().received().empty());  // still waiting: not freed by a deadline
}

TEST_CASE("headers trickling in past the header deadline get 408 and the connection closes") {
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.header_timeout = 3s;
  test::RunningServer srv(*lm, opts);
  // A line every 2 s: each read succeeds well within httplib's 5 s read timeout.
  std::vector<std::unique_ptr<TricklingHeaders>> slow;
  for (int i = 0; i < 16; ++i) slow.push_back(std::make_unique<TricklingHeaders>(srv.port(), 2s, 60s));
  for (auto& s : slow) {
    s->join();  // expected: 3 s (60 s at most)
    check_timed_out(s->connection());
  }
}

TEST_CASE("a body trickling in past the body deadline gets 408 and the connection closes") {
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.body_timeout = 3s;
  test::RunningServer srv(*lm, opts);
  RawConnection conn(srv.port());
  const std::string body = kQuickRequest;
  REQUIRE(conn.send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  // One byte every second: the whole body would take over a minute.
  const auto end = std::chrono::steady_clock::now() + 60s;
  for (size_t i = 0; i < body.size() && std::chrono::steady_clock::now() < end; ++i) {
    if (conn.wait_closed(1s) || !conn.send(body.substr(i, 1))) break;
  }
  conn.wait_closed(30s);
  check_timed_out(conn);
}

TEST_CASE("requests over the queue bound get 503 with Retry-After") {
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.max_batch = 1;
  opts.max_queue = 1;  // one generating, one waiting: the others are refused at once
  test::RunningServer srv(*lm, opts);
  std::vector<std::future<test::HttpReply>> replies;
  for (int i = 0; i < 16; ++i)
    replies.push_back(std::async(std::launch::async, [&] { return test::post(srv.port(), "/v1/completions", kLongRequest); }));
  int ok = 0, refused = 0;
  for (auto& f : replies) {
    const auto r = f.get();
    INFO("status " << r.status << ": " << r.body);
    if (r.status == 200) {
      ++ok;
    } else {
      CHECK(r.status == 503);
      CHECK(r.header("Retry-After") == "1");
      check_error(r.body, "server_overloaded");
      ++refused;
    }
  }
  CHECK(ok >= 1);
  CHECK(refused >= 1);
}

TEST_CASE("connections over the connection bound get 503 with Retry-After at once") {
  auto lm = test::load_stories();
  serve::ServeOptions opts;
  opts.max_connections = 4;
  opts.header_timeout = 120s;
  test::RunningServer srv(*lm, opts);
  {
    std::vector<std::unique_ptr<RawConnection>> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(std::make_unique<RawConnection>(srv.port()));
      REQUIRE(held.back()->send("POST /v1/completions HTTP/1.1\r\n"));  // and nothing more
    }
    std::this_thread::sleep_for(500ms);  // the server has accepted them all
    auto res = quick_post(srv.port());
    CHECK(res->status == 503);
    CHECK(res->get_header_value("Retry-After") == "1");
    check_error(res->body, "server_overloaded");
  }
  // Once they close, connections are served again.
  const auto end = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    const auto r = test::post(srv.port(), "/v1/completions", kQuickRequest);
    if (r.status == 200 || std::chrono::steady_clock::now() >= end) {
      CHECK(r.status == 200);
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
}

TEST_CASE("pizza serve refuses limits that are not positive") {
  const auto model = test::shared("models/stories260K").string();
  for (const auto& [option, value] : std::vector<std::pair<std::string, std::string>>{
           {"--header-timeout", "0"}, {"--body-timeout", "-1"}, {"--shutdown-timeout", "0"}, {"--max-queue", "0"},
           {"--max-connections", "-5"}}) {
    auto res = test::run_cli({"serve", "--model", model, "--port", "0", option, value});
    INFO(option << " " << value << ": " << res.err);
    CHECK(res.exit_code == 2);
    CHECK_THAT(res.err, Catch::Contains(option + " must be"));
  }
}
