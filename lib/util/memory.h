// Memory sizes and how much memory this process may still use: --max-memory's parser, the
// kernel's MemAvailable and the cgroup's limit. Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pizza {

// "512M", "2G", "1.5GiB", "64k", "1048576" (bytes): K, M, G and T (optionally followed by "iB"
// or "B") are powers of 1024, case-insensitive. UsageError naming `option` and the value for
// anything else, zero, a negative or non-finite number, or more than 2^62 bytes.
int64_t parse_memory_size(std::string_view text, std::string_view option = "--max-memory");

// "1.1 GiB", "512 MiB", "900 KiB", "12 B".
std::string format_bytes(int64_t bytes);

// The parsers behind available_memory_bytes(), each over a file's contents, so they can be
// tested without this machine's files. nullopt: no limit (or unreadable).
// /proc/meminfo's MemAvailable line ("MemAvailable:   22880204 kB").
std::optional<int64_t> meminfo_available(std::string_view meminfo);
// cgroup v2: memory.max ("max" or bytes) minus memory.current (clamped at 0).
std::optional<int64_t> cgroup_v2_headroom(std::string_view memory_max, std::string_view memory_current);
// cgroup v1: memory.limit_in_bytes minus memory.usage_in_bytes; the "unlimited" value v1
// reports (about 2^63 rounded down to a page) counts as no limit.
std::optional<int64_t> cgroup_v1_headroom(std::string_view limit_in_bytes, std::string_view usage_in_bytes);
// This process's cgroup path from /proc/self/cgroup: controller "" for the v2 line
// ("0::/user.slice/..."), "memory" for the v1 memory hierarchy ("4:memory:/docker/..."); nullopt
// when there is no such line.
std::optional<std::string> cgroup_path(std::string_view proc_self_cgroup, std::string_view controller);

// What this process can still allocate without swapping or hitting its cgroup's limit: the
// smallest of MemAvailable, the cgroup v2 headroom and the cgroup v1 headroom that exist.
// nullopt when none can be read (not Linux).
std::optional<int64_t> available_memory_bytes();

// This process's resident memory now (/proc/self/statm; 0 where unreadable).
int64_t current_rss_bytes();

// The share of available memory --max-memory defaults to. A quarter is left free because the
// estimate of a batch's working set is approximate (allocator rounding and fragmentation, glibc
// keeping up to 1 GiB of freed heap mapped: util/allocator.h), other processes keep allocating
// while pizza runs, and the page cache of mapped weight files is counted as available although
// pizza itself needs it resident.
inline constexpr double kDefaultMemoryFraction = 0.75;

}  // namespace pizza
