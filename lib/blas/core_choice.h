// The pure decisions behind the OpenBLAS kernel re-exec: ranking OpenBLAS core names, picking
// the best core a CPU can run, and turning (environment, probed BLAS, CPU) into the environment
// a re-exec should set. No side effects here, so every rule is unit-testable by hand.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blas/blas.h"
#include "blas/cpu_features.h"

namespace pizza::blas {

inline constexpr const char* kCoreTypeVar = "OPENBLAS_CORETYPE";   // read by OpenBLAS at load
inline constexpr const char* kNoReexecVar = "PIZZA_NO_BLAS_REEXEC";  // user opt-out
inline constexpr const char* kReexecedVar = "PIZZA_BLAS_REEXECED";   // set in the re-exec'd child
inline constexpr const char* kOriginalCoreVar = "PIZZA_BLAS_ORIGINAL_CORE";  // OpenBLAS's pick
inline constexpr const char* kFallbackVar = "PIZZA_BLAS_FALLBACK";  // self-check failed once
inline constexpr const char* kOmpWaitVar = "OMP_WAIT_POLICY";      // read by the OpenMP runtime at load
inline constexpr const char* kGompSpinVar = "GOMP_SPINCOUNT";      // libgomp's finer-grained variant

// Whether the loaded OpenBLAS build has a kernel set of this name.
using CoreSupported = std::function<bool(std::string_view core)>;

// Capability tier of an OpenBLAS core name (case-insensitive): higher means wider vector
// kernels. -1 for names pizza does not know, which are never replaced.
int core_rank(std::string_view core);

// The cores pizza would ask for on this CPU, best first; empty when nothing beyond OpenBLAS's
// generic detection is worth forcing. Conservative: AVX-512 maps to SkylakeX (the Cooperlake
// and SapphireRapids kernels add bf16/fp16 routines only, not a faster sgemm).
std::vector<std::string> candidate_cores(const CpuFeatures& cpu);

// The first candidate the loaded library supports (all known names when `supported` is empty).
std::optional<std::string> best_core(const CpuFeatures& cpu, const CoreSupported& supported = {});

// A core strictly better than `current_core` that this CPU and library can run, if any.
std::optional<std::string> choose_core(const CpuFeatures& cpu, std::string_view current_core,
                                       const CoreSupported& supported = {});

// The variables to set before re-exec'ing, or nothing when pizza must not re-exec: the user set
// OPENBLAS_CORETYPE, opted out with PIZZA_NO_BLAS_REEXEC, this is already the re-exec'd child,
// the BLAS is not OpenBLAS, or no strictly better core exists.
std::optional<EnvMap> reexec_plan(const EnvMap& env, const BlasInfo& blas, const CpuFeatures& cpu,
                                  const CoreSupported& supported = {});

// Whether this process was started with pizza's start plan (by the front end, or its own
// re-exec) and its kernel still needs the self-check.
// OpenBLAS runs its own thread pool beside libtorch's OpenMP threads. OpenMP's default lets
// idle threads spin after every parallel region, holding the cores OpenBLAS's threads need for
// the next matrix product (measured on 2 cores: gradient attribution 1.8x and PIZZA's per-row
// loop 2.6x faster with a passive policy). {OMP_WAIT_POLICY: PASSIVE}, unless the user chose a
// policy or spin count, or the BLAS is not OpenBLAS.
std::optional<EnvMap> wait_policy_plan(const EnvMap& env, const BlasInfo& blas);

// Everything a start-up re-exec should set: the better OpenBLAS core (reexec_plan) and the
// OpenMP wait policy (wait_policy_plan), marked as re-exec'd; nothing when neither applies, the
// user opted out, or this is already the re-exec'd child.
std::optional<EnvMap> startup_plan(const EnvMap& env, const BlasInfo& blas, const CpuFeatures& cpu,
                                   const CoreSupported& supported = {});

bool needs_self_check(const EnvMap& env);

// In the re-exec'd child: the variables for a second, final re-exec back to OpenBLAS's own core
// when the self-check failed; nothing when it passed or a fallback already happened.
std::optional<EnvMap> fallback_plan(const EnvMap& env, bool self_check_passed);

// "0.3.21" from "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64"; "" if absent.
std::string parse_openblas_version(std::string_view config);

// "OpenBLAS", "Intel MKL", "BLIS", "ATLAS", "reference BLAS" or "unknown" from what the
// process exports and the file that provides sgemm_.
std::string classify_blas(bool has_openblas_api, bool has_sgemm, std::string_view library_path);

// Who chose the running core, in words, e.g. "pizza, at start-up (OpenBLAS detected Prescott)".
std::string core_origin(const EnvMap& env);

}  // namespace pizza::blas
