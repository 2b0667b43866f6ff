#include "blas/cpu_features.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PIZZA_X86 1
#endif

namespace pizza::blas {

bool CpuFeatures::has_avx512_skylakex() const {
  return os_avx512 && avx512f && avx512cd && avx512bw && avx512dq && avx512vl;
}

bool CpuFeatures::has_avx2_fma() const { return os_avx && avx2 && fma; }

std::string CpuFeatures::flag_list() const {
  const std::pair<const char*, bool> flags[] = {
      {"sse3", sse3},         {"ssse3", ssse3},       {"sse4.1", sse4_1},
      {"sse4.2", sse4_2},     {"avx", avx},           {"avx2", avx2},
      {"fma", fma},           {"avx512f", avx512f},   {"avx512cd", avx512cd},
      {"avx512bw", avx512bw}, {"avx512dq", avx512dq}, {"avx512vl", avx512vl},
      {"avx512_bf16", avx512_bf16}, {"avx512_fp16", avx512_fp16}, {"amx_tile", amx_tile},
  };
  std::string out;
  for (const auto& [name, present] : flags) {
    if (!present) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

#ifdef PIZZA_X86
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

// Leaves above the CPU's maximum return zeros, so unsupported features read as absent.
Regs cpuid(unsigned leaf, unsigned subleaf = 0) {
  Regs r;
  if (__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d) == 0) return Regs{};
  return r;
}

bool bit(unsigned reg, int n) { return ((reg >> n) & 1U) != 0; }

// XCR0 via xgetbv; only valid when cpuid reports OSXSAVE (otherwise the instruction faults).
std::uint64_t xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

std::string brand_string() {
  if (cpuid(0x80000000U).a < 0x80000004U) return {};
  std::array<char, 49> text{};
  for (unsigned i = 0; i < 3; ++i) {
    Regs r = cpuid(0x80000002U + i);
    const unsigned words[4] = {r.a, r.b, r.c, r.d};
    std::memcpy(text.data() + 16 * i, words, 16);
  }
  std::string s(text.data());
  // Vendors pad the brand string with spaces on either side.
  auto first = s.find_first_not_of(' ');
  auto last = s.find_last_not_of(' ');
  return first == std::string::npos ? std::string{} : s.substr(first, last - first + 1);
}

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  Regs r0 = cpuid(0);
  const unsigned max_leaf = r0.a;
  char vendor[13] = {};
  std::memcpy(vendor, &r0.b, 4);
  std::memcpy(vendor + 4, &r0.d, 4);
  std::memcpy(vendor + 8, &r0.c, 4);
  f.vendor = vendor;
  f.brand = brand_string();
  if (max_leaf < 1) return f;

  Regs r1 = cpuid(1);
  const int base_family = static_cast<int>((r1.a >> 8) & 0xF);
  const int base_model = static_cast<int>((r1.a >> 4) & 0xF);
  f.family = base_family == 0xF ? base_family + static_cast<int>((r1.a >> 20) & 0xFF) : base_family;
  f.model = (base_family == 0x6 || base_family == 0xF)
                ? base_model + (static_cast<int>((r1.a >> 16) & 0xF) << 4)
                : base_model;
  f.sse3 = bit(r1.c, 0);
  f.ssse3 = bit(r1.c, 9);
  f.fma = bit(r1.c, 12);
  f.sse4_1 = bit(r1.c, 19);
  f.sse4_2 = bit(r1.c, 20);
  f.avx = bit(r1.c, 28);
  if (bit(r1.c, 27)) {  // OSXSAVE
    const std::uint64_t x = xcr0();
    f.os_avx = (x & 0x6) == 0x6;      // SSE + AVX state
    f.os_avx512 = (x & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (max_leaf >= 7) {
    Regs r7 = cpuid(7, 0);
    f.avx2 = bit(r7.b, 5);
    f.avx512f = bit(r7.b, 16);
    f.avx512dq = bit(r7.b, 17);
    f.avx512cd = bit(r7.b, 28);
    f.avx512bw = bit(r7.b, 30);
    f.avx512vl = bit(r7.b, 31);
    f.avx512_fp16 = bit(r7.d, 23);
    f.amx_tile = bit(r7.d, 24);
    if (r7.a >= 1) f.avx512_bf16 = bit(cpuid(7, 1).a, 5);
  }
  return f;
}
#else
CpuFeatures detect_cpu_features() { return CpuFeatures{}; }
#endif

}  // namespace pizza::blas
