// Reading files that are not regular files: a FIFO in place of a model file must be refused at
// once (a plain open() would block until a writer came), while inputs a user may stream (a key
// file given as <(...), piped prompts) still read from a FIFO.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <future>
#include <thread>

#include "support/paths.h"
#include "util/error.h"
#include "util/file.h"

using namespace pizza;

TEST_CASE("read_file refuses a FIFO or a directory or a missing file without blocking") {
  test::TempDir dir;
  const auto fifo = dir / "model.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Run on another thread so that a regression (a blocking open) fails the test instead of hanging it.
  auto refused = std::async(std::launch::async, [&] {
    try {
      (void)read_file(fifo);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  REQUIRE(refused.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  const auto msg = refused.get();
  CHECK(msg.find(fifo.string()) != std::string::npos);
  CHECK(msg.find("a FIFO, not a regular file") != std::string::npos);

  auto mapped = std::async(std::launch::async, [&] {
    try {
      MappedFile m(fifo);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  REQUIRE(mapped.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(mapped.get().find("a FIFO, not a regular file") != std::string::npos);

  CHECK_THROWS_WITH(read_file(dir.path()), Catch::Contains("a directory, not a regular file"));
  CHECK_THROWS_WITH(read_file(dir / "absent"), Catch::Contains((dir / "absent").string()));
}

TEST_CASE("read_file reads a stream from a FIFO when the caller allows streams") {
  test::TempDir dir;
  const auto fifo = dir / "key";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] { std::ofstream(fifo) << "sk-secret\n"; });
  CHECK(read_file(fifo, FileSource::stream_ok) == "sk-secret\n");
  writer.join();
}

TEST_CASE("read_file reads a regular file whole") {
  test::TempDir dir;
  std::string big(300000, 'x');
  big[123456] = 'y';
  std::ofstream(dir / "f", std::ios::binary) << big;
  CHECK(read_file(dir / "f") == big);
  std::ofstream(dir / "empty", std::ios::binary).flush();
  CHECK(read_file(dir / "empty").empty());
}
