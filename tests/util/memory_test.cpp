#include <catch2/catch.hpp>

#include "util/error.h"
#include "util/memory.h"

using pizza::parse_memory_size;

TEST_CASE("parse_memory_size reads bytes and K M G T as powers of 1024") {
  CHECK(parse_memory_size("1048576") == 1048576);
  CHECK(parse_memory_size("64k") == 64 * 1024);
  CHECK(parse_memory_size("512M") == 512LL * 1024 * 1024);
  CHECK(parse_memory_size("2G") == 2LL * 1024 * 1024 * 1024);
  CHECK(parse_memory_size("2g") == 2LL * 1024 * 1024 * 1024);
  CHECK(parse_memory_size("1.5GiB") == 1536LL * 1024 * 1024);
  CHECK(parse_memory_size("1.5 GB") == 1536LL * 1024 * 1024);
  CHECK(parse_memory_size("3MiB") == 3LL * 1024 * 1024);
  CHECK(parse_memory_size("1T") == 1LL << 40);
  CHECK(parse_memory_size("100B") == 100);
  CHECK(parse_memory_size(" 8M ") == 8LL << 20);
}

TEST_CASE("parse_memory_size rejects zero negative non-finite and junk naming the option and value") {
  for (const char* bad : {"0", "0G", "-1G", "-5", "nan", "NaN", "inf", "", "G", "2X", "2GG", "1.2.3G", ".5G", "5.G",
                          "12 apples", "1e9", "0x10", "0.0000001", "99999999T"}) {
    INFO(bad);
    try {
      parse_memory_size(bad, "--max-memory");
      FAIL("accepted");
    } catch (const pizza::UsageError& e) {
      const std::string msg = e.what();
      CHECK(msg.find("--max-memory") != std::string::npos);
      CHECK(msg.find(std::string("'") + bad + "'") != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("format_bytes names the largest binary unit") {
  CHECK(pizza::format_bytes(12) == "12 B");
  CHECK(pizza::format_bytes(1536) == "1.5 KiB");
  CHECK(pizza::format_bytes(512LL << 20) == "512 MiB");
  CHECK(pizza::format_bytes(1181116006) == "1.1 GiB");
}

TEST_CASE("meminfo_available reads the MemAvailable line in KiB") {
  const char* meminfo =
      "MemTotal:       24598552 kB\n"
      "MemFree:        21012345 kB\n"
      "MemAvailable:   22880204 kB\n"
      "Buffers:          123456 kB\n";
  CHECK(pizza::meminfo_available(meminfo) == 22880204LL * 1024);
  // Kernels before 3.14 have no MemAvailable.
  CHECK_FALSE(pizza::meminfo_available("MemTotal: 100 kB\nMemFree: 50 kB\n"));
  CHECK_FALSE(pizza::meminfo_available("MemAvailable: lots kB\n"));
  CHECK_FALSE(pizza::meminfo_available(""));
}

TEST_CASE("cgroup v2 headroom is memory.max minus memory.current and max means no limit") {
  CHECK(pizza::cgroup_v2_headroom("4294967296\n", "1073741824\n") == 3221225472LL);
  CHECK_FALSE(pizza::cgroup_v2_headroom("max\n", "1073741824\n"));
  // Over the limit (reclaim pending): nothing left, never negative.
  CHECK(pizza::cgroup_v2_headroom("1000\n", "2000\n") == 0);
  CHECK_FALSE(pizza::cgroup_v2_headroom("garbage", "1"));
}

TEST_CASE("cgroup v1 headroom is limit minus usage and the page-rounded 2^63 means no limit") {
  CHECK(pizza::cgroup_v1_headroom("8589934592\n", "4046761984\n") == 8589934592LL - 4046761984LL);
  CHECK_FALSE(pizza::cgroup_v1_headroom("9223372036854771712\n", "4046761984\n"));
  CHECK(pizza::cgroup_v1_headroom("100\n", "200\n") == 0);
}

TEST_CASE("cgroup_path finds the v2 line and a v1 controller among several") {
  const char* hybrid =
      "9:name=systemd:/\n"
      "4:memory,kmem:/docker/abc\n"
      "1:cpu,cpuacct:/\n"
      "0::/user.slice/session-1.scope\n";
  CHECK(pizza::cgroup_path(hybrid, "") == std::optional<std::string>("/user.slice/session-1.scope"));
  CHECK(pizza::cgroup_path(hybrid, "memory") == std::optional<std::string>("/docker/abc"));
  CHECK(pizza::cgroup_path(hybrid, "kmem") == std::optional<std::string>("/docker/abc"));
  CHECK_FALSE(pizza::cgroup_path(hybrid, "pids"));
  CHECK_FALSE(pizza::cgroup_path("4:memory:/x\n", ""));
  CHECK(pizza::cgroup_path("0::/\n", "") == std::optional<std::string>("/"));
}

TEST_CASE("available_memory_bytes reads this machine's files") {
  auto a = pizza::available_memory_bytes();
  REQUIRE(a);  // Linux: /proc/meminfo exists
  CHECK(*a > 0);
}
