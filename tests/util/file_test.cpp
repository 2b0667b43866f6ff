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

TEST_CASE("write_file_atomic follows a symlink and writes its target") {
  test::TempDir dir;
  std::ofstream(dir / "real.json") << "old";
  std::filesystem::create_symlink("real.json", dir / "link.json");
  write_file_atomic(dir / "link.json", "new");
  CHECK(std::filesystem::is_symlink(dir / "link.json"));
  CHECK(read_file(dir / "real.json") == "new");
  // A dangling link creates the file it names.
  std::filesystem::create_symlink("made.json", dir / "dangling.json");
  write_file_atomic(dir / "dangling.json", "made");
  CHECK(std::filesystem::is_symlink(dir / "dangling.json"));
  CHECK(read_file(dir / "made.json") == "made");
}

TEST_CASE("write_file_atomic writes devices and FIFOs in place and refuses other special files") {
  // /dev/full reports a full disk: the error must surface, and the device must stay a device
  // (a rename would have replaced it with a regular file, as root can).
  CHECK_THROWS_WITH(write_file_atomic("/dev/full", "x"), Catch::Contains("/dev/full") && Catch::Contains("No space left"));
  struct stat st {};
  REQUIRE(::stat("/dev/full", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK_NOTHROW(write_file_atomic("/dev/null", "discarded"));
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));

  test::TempDir dir;
  const auto fifo = dir / "out.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto reader = std::async(std::launch::async, [&] { return read_file(fifo, FileSource::stream_ok); });
  write_file_atomic(fifo, "{\"through\": \"the pipe\"}");
  REQUIRE(reader.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(reader.get() == "{\"through\": \"the pipe\"}");
  REQUIRE(::stat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));

  CHECK_THROWS_WITH(write_file_atomic(dir.path(), "x"), Catch::Contains("a directory"));
}

TEST_CASE("check_writable refuses what write_file_atomic would fail on, before any work") {
  test::TempDir dir;
  CHECK_NOTHROW(check_writable(dir / "new.json"));
  CHECK_NOTHROW(check_writable("/dev/null"));
  CHECK_THROWS_WITH(check_writable(dir / "missing/out.json"), Catch::Contains((dir / "missing/out.json").string()));
  std::ofstream(dir / "file") << "x";
  CHECK_THROWS_WITH(check_writable(dir / "file/out.json"), Catch::Contains("not a directory"));
  CHECK_THROWS_WITH(check_writable(dir.path()), Catch::Contains("a directory"));
}

TEST_CASE("MappedFile copied keeps its bytes when the file is rewritten or truncated in place") {
  test::TempDir dir;
  const auto path = dir / "weights.bin";
  std::string original(3 * 4096 + 17, '\0');
  for (size_t i = 0; i < original.size(); ++i) original[i] = static_cast<char>(i * 7 + 1);
  test::spit(path, original);
  const MappedFile mapped(path), copied(path, Residency::copied);
  REQUIRE(copied.view() == original);
  REQUIRE(mapped.view() == original);
  // Rewrite in place (same inode, as `cp new old` or a writer with O_TRUNC does): a mapping shows
  // the new bytes (which is why --no-mmap exists), the copy does not.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    f.write("changed", 7);
  }
  CHECK(std::string_view(mapped.data() + 4096, 7) == "changed");
  CHECK(copied.view() == original);
  std::filesystem::resize_file(path, 0);
  CHECK(copied.view() == original);
  // An empty file is an empty view either way.
  const MappedFile empty(path, Residency::copied);
  CHECK(empty.size() == 0);
}
