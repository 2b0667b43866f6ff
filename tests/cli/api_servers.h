// The processes `pizza api` tests talk to: `pizza serve` on stories260K, and the fault-injecting
// proxy (tests/support_proxy/fault_proxy.cpp) placed in front of it, with its counters.
#pragma once

#include <catch2/catch.hpp>

#include <httplib.h>
#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

#include "support/paths.h"
#include "support/subprocess.h"

namespace pizza::test {

// `pizza serve --port 0` on stories260K, with `options` (e.g. {"--max-batch", "1"}).
class PizzaServe {
 public:
  explicit PizzaServe(std::vector<std::string> options = {}) : process_(argv(std::move(options))) {}
  std::string origin() const { return process_.origin(); }
  std::string base_url() const { return origin() + "/v1"; }

 private:
  static std::vector<std::string> argv(std::vector<std::string> options) {
    std::vector<std::string> a{PIZZA_BINARY, "serve", "--model", shared("models/stories260K").string(), "--port", "0"};
    a.insert(a.end(), options.begin(), options.end());
    return a;
  }
  ListeningProcess process_;
};

// What GET /__proxy/stats reports.
struct ProxyStats {
  uint64_t received = 0, distinct = 0, forwarded = 0, faults_total = 0;
  std::map<std::string, uint64_t> faults;  // by kind: 429, 500, 503, slow, drop, truncated, quota
};

// pizza_fault_proxy in front of `upstream` (an origin, http://HOST:PORT), with `options`.
class FaultProxy {
 public:
  FaultProxy(const std::string& upstream, std::vector<std::string> options) : process_(argv(upstream, std::move(options))) {}
  std::string base_url() const { return process_.origin() + "/v1"; }
  int port() const { return process_.port(); }
  Subprocess& process() { return process_.process(); }

  ProxyStats stats() const {
    httplib::Client client("127.0.0.1", process_.port());
    auto res = client.Get("/__proxy/stats");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(res->body);
    ProxyStats s;
    s.received = uint64_t(doc["received"]);
    s.distinct = uint64_t(doc["distinct"]);
    s.forwarded = uint64_t(doc["forwarded"]);
    s.faults_total = uint64_t(doc["faults_total"]);
    for (auto [kind, count] : doc["faults"].get_object()) s.faults[std::string(kind)] = uint64_t(count);
    return s;
  }

 private:
  static std::vector<std::string> argv(const std::string& upstream, std::vector<std::string> options) {
    std::vector<std::string> a{PIZZA_FAULT_PROXY, "--upstream", upstream, "--port", "0"};
    a.insert(a.end(), options.begin(), options.end());
    return a;
  }
  ListeningProcess process_;
};

}  // namespace pizza::test
