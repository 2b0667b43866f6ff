// The processes `pizza api` tests talk to: `pizza serve` on stories260K (PizzaServe, in
// support/subprocess.h), and the fault-injecting proxy (tests/support_proxy/fault_proxy.cpp)
// placed in front of it, with its counters.
#pragma once

#include <catch2/catch.hpp>

#include <httplib.h>
#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace pizza::test {

// What GET /__proxy/stats reports.
struct ProxyStats {
  uint64_t received = 0, distinct = 0, forwarded = 0, faults_total = 0;
  std::map<std::string, uint64_t> faults;  // by kind: 429, 500, 503, slow, drop, truncated, quota
};

// pizza_fault_proxy in front of `upstream` (an origin, http://HOST:PORT), with `options`.
class FaultProxy : public ListeningProcess {
 public:
  FaultProxy(const std::string& upstream, const std::vector<std::string>& options)
      : ListeningProcess(argv(upstream, options)) {}
  std::string base_url() const { return origin() + "/v1"; }

  ProxyStats stats() const {
    httplib::Client client("127.0.0.1", port());
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
  static std::vector<std::string> argv(const std::string& upstream, const std::vector<std::string>& options) {
    std::vector<std::string> a{PIZZA_FAULT_PROXY, "--upstream", upstream, "--port", "0"};
    a.insert(a.end(), options.begin(), options.end());
    return a;
  }
};

}  // namespace pizza::test
