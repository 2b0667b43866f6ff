#include "util/memory.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "util/error.h"

#include <unistd.h>

namespace pizza {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> parse_int(std::string_view s) {
  s = trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<int64_t> smaller(std::optional<int64_t> a, std::optional<int64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace

int64_t parse_memory_size(std::string_view text, std::string_view option) {
  const auto fail = [&]() -> int64_t {
    throw UsageError(std::string(option) + ": '" + std::string(text) +
                     "' is not a memory size (a positive number of bytes, or with K, M, G or T: 512M, 2G, 1.5GiB)");
  };
  std::string_view s = trim(text);
  size_t end = 0;
  while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) || s[end] == '.')) ++end;
  const std::string number(s.substr(0, end));
  if (number.empty() || number.front() == '.' || number.back() == '.' ||
      number.find('.') != number.rfind('.'))
    return fail();
  double value = 0;
  if (std::sscanf(number.c_str(), "%lf", &value) != 1 || !std::isfinite(value)) return fail();
  std::string unit;
  for (char c : trim(s.substr(end))) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::array<std::pair<char, int>, 4> kScales{{{'k', 10}, {'m', 20}, {'g', 30}, {'t', 40}}};
  int shift = 0;
  if (!unit.empty() && unit != "b") {
    bool known = false;
    for (auto [letter, bits] : kScales)
      if (unit[0] == letter) {
        shift = bits;
        known = true;
      }
    const auto rest = std::string_view(unit).substr(1);
    if (!known || !(rest.empty() || rest == "b" || rest == "ib")) return fail();
  }
  const double bytes = std::floor(value * std::ldexp(1.0, shift));
  if (!(bytes >= 1) || bytes > std::ldexp(1.0, 62)) return fail();
  return static_cast<int64_t>(bytes);
}

std::string format_bytes(int64_t bytes) {
  static constexpr std::array<const char*, 5> kUnits{"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (std::fabs(v) >= 1024 && u + 1 < kUnits.size()) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, kUnits[u]);
  return buf;
}

std::optional<int64_t> meminfo_available(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  size_t at = 0;
  while (at < meminfo.size()) {
    const size_t nl = meminfo.find('\n', at);
    const auto line = meminfo.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? meminfo.size() : nl + 1;
    if (!line.starts_with(kKey)) continue;
    auto rest = trim(line.substr(kKey.size()));
    int64_t scale = 1;
    if (rest.ends_with("kB")) {
      scale = 1024;  // the kernel's "kB" is KiB
      rest = trim(rest.substr(0, rest.size() - 2));
    }
    auto v = parse_int(rest);
    if (!v || *v > (int64_t{1} << 52)) return std::nullopt;
    return *v * scale;
  }
  return std::nullopt;
}

std::optional<int64_t> cgroup_v2_headroom(std::string_view memory_max, std::string_view memory_current) {
  if (trim(memory_max) == "max") return std::nullopt;
  auto limit = parse_int(memory_max), used = parse_int(memory_current);
  if (!limit) return std::nullopt;
  return std::max<int64_t>(0, *limit - used.value_or(0));
}

std::optional<int64_t> cgroup_v1_headroom(std::string_view limit_in_bytes, std::string_view usage_in_bytes) {
  auto limit = parse_int(limit_in_bytes), used = parse_int(usage_in_bytes);
  // v1 reports "no limit" as PAGE_COUNTER_MAX pages: 0x7FFFFFFFFFFFF000 with 4 KiB pages.
  if (!limit || *limit >= (int64_t{1} << 62)) return std::nullopt;
  return std::max<int64_t>(0, *limit - used.value_or(0));
}

std::optional<std::string> cgroup_path(std::string_view proc_self_cgroup, std::string_view controller) {
  size_t at = 0;
  while (at < proc_self_cgroup.size()) {
    const size_t nl = proc_self_cgroup.find('\n', at);
    const auto line = proc_self_cgroup.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? proc_self_cgroup.size() : nl + 1;
    // hierarchy-id:controller-list:path
    const size_t c1 = line.find(':'), c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const auto controllers = line.substr(c1 + 1, c2 - c1 - 1);
    bool match = controller.empty() ? line.substr(0, c1) == "0" && controllers.empty() : false;
    for (size_t p = 0; !controller.empty() && p <= controllers.size();) {
      const size_t comma = controllers.find(',', p);
      const auto name = controllers.substr(p, comma == std::string_view::npos ? std::string_view::npos : comma - p);
      if (name == controller) match = true;
      if (comma == std::string_view::npos) break;
      p = comma + 1;
    }
    if (match) return std::string(trim(line.substr(c2 + 1)));
  }
  return std::nullopt;
}

int64_t current_rss_bytes() {
  const auto statm = read_text("/proc/self/statm");
  if (!statm) return 0;
  std::istringstream in(*statm);
  int64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

std::optional<int64_t> available_memory_bytes() {
  std::optional<int64_t> best;
  if (auto m = read_text("/proc/meminfo")) best = meminfo_available(*m);
  const auto self = read_text("/proc/self/cgroup").value_or("");
  // This process's own group, else the hierarchy's root as mounted (inside a container its
  // namespace root, which is the container's group).
  auto dirs = [](const std::string& mount, std::optional<std::string> path) {
    std::vector<std::string> out;
    if (path && *path != "/") out.push_back(mount + *path);
    out.push_back(mount);
    return out;
  };
  for (const auto& dir : dirs("/sys/fs/cgroup", cgroup_path(self, ""))) {
    auto max = read_text(dir + "/memory.max"), cur = read_text(dir + "/memory.current");
    if (!max || !cur) continue;
    best = smaller(best, cgroup_v2_headroom(*max, *cur));
    break;
  }
  for (const auto& dir : dirs("/sys/fs/cgroup/memory", cgroup_path(self, "memory"))) {
    auto limit = read_text(dir + "/memory.limit_in_bytes"), usage = read_text(dir + "/memory.usage_in_bytes");
    if (!limit || !usage) continue;
    best = smaller(best, cgroup_v1_headroom(*limit, *usage));
    break;
  }
  return best;
}

}  // namespace pizza
