// What the CPU (and the operating system) can run, read with cpuid/xgetbv. Only the features
// that decide which OpenBLAS kernel family is usable are kept.
#pragma once

#include <string>

namespace pizza::blas {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ; empty on non-x86 builds
  std::string brand;   // e.g. "Intel(R) Xeon(R) Processor"; empty when cpuid has no brand string
  int family = 0;      // display family (base + extended)
  int model = 0;       // display model (base + extended for families 6 and 15)
  bool sse3 = false, ssse3 = false, sse4_1 = false, sse4_2 = false;
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, avx512_fp16 = false, amx_tile = false;
  // The OS saves the wider register state on context switch (XCR0), without which the
  // instructions fault even though cpuid advertises them (e.g. some hypervisors).
  bool os_avx = false;     // XMM + YMM state
  bool os_avx512 = false;  // XMM + YMM + opmask + ZMM state

  // The AVX-512 subset OpenBLAS's SkylakeX kernels need, including OS support.
  bool has_avx512_skylakex() const;
  // AVX2 + FMA with OS support (OpenBLAS's Haswell/Zen kernels).
  bool has_avx2_fma() const;
  // Space-separated list of the flags above that are present, e.g. "sse4.2 avx avx2 fma".
  std::string flag_list() const;
};

// Reads this CPU's features.
CpuFeatures detect_cpu_features();

}  // namespace pizza::blas
