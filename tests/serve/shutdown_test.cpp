// `pizza serve` as a user runs it: the built binary prints its address when ready, answers,
// and on SIGTERM finishes the request in flight and exits 0.
#include <torch/torch.h>  // before Catch: see serve_support.h

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <regex>

#include "serve_support.h"
#include "support/subprocess.h"

TEST_CASE("the pizza serve binary announces its address and shuts down gracefully on SIGTERM") {
  pizza::test::PizzaServe serve({"--threads", "1"});
  pizza::test::Subprocess& child = serve.process();
  const int port = serve.port();
  CHECK_THAT(child.err(), Catch::Contains("pizza serve: listening on " + serve.origin() + "\n"));

  CHECK(pizza::test::get(port, "/v1/models").status == 200);
  // A long request in flight when the signal arrives is still answered.
  auto in_flight = std::async(std::launch::async, [port] {
    return pizza::test::post(port, "/v1/completions",
                             R"({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0})");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  child.kill(SIGTERM);
  CHECK(in_flight.get().status == 200);
  CHECK(child.wait() == 0);
  CHECK_THAT(child.read_until(std::regex("$^"), std::chrono::seconds(5)), Catch::Contains("shutting down"));
}
