// Which BLAS libtorch ends up calling, which OpenBLAS kernel ("core") it picked, and the
// start-up re-exec that selects a better kernel when OpenBLAS's own detection falls back to a
// generic one (OpenBLAS 0.3.21 picks "Prescott" on recent Intel CPUs).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <map>

namespace pizza::blas {

// Environment variables, as name -> value; a name that is absent is unset (an empty value is
// still "set": a user who exports OPENBLAS_CORETYPE= has said something, so pizza keeps out).
using EnvMap = std::map<std::string, std::string, std::less<>>;

struct BlasInfo {
  std::string library;   // e.g. "OpenBLAS", "reference BLAS", "unknown"
  std::string version;   // e.g. "0.3.21" when known
  std::string core;      // OpenBLAS kernel name, e.g. "SkylakeX", "Prescott"; empty otherwise
  std::string config;    // openblas_get_config() when available
  int threads = 0;       // BLAS threads when known
};

// Probes the BLAS loaded into this process (dlsym on the OpenBLAS entry points).
BlasInfo probe();

// One-line summary, e.g. "OpenBLAS 0.3.21 (core SkylakeX)"; "no BLAS found" when none.
std::string summary();

// "pizza X.Y.Z" plus the BLAS summary, naming the kernel the engine runs with (the one
// start_plan picks, when it picks one); used for --version.
std::string version_string();

// Multi-line human-readable report for `pizza doctor`.
std::string doctor_report();

// If OPENBLAS_CORETYPE is unset, PIZZA_NO_BLAS_REEXEC is unset, and the CPU supports a better
// OpenBLAS kernel than the one OpenBLAS chose, sets OPENBLAS_CORETYPE and execv()s the same
// binary once (PIZZA_BLAS_REEXECED marks the child so it never loops). A small sgemm
// self-check against a naive product guards the choice: if it disagrees, the child falls back
// to OpenBLAS's own choice. Returns normally when no re-exec happens.
void maybe_reexec_with_best_core(int argc, char** argv);

// What a process that multiplies matrices should start with (startup_plan: a better OpenBLAS
// core, the OpenMP wait policy, marked for the self-check), asked of the BLAS loaded into this
// process (loading libblas.so.3 when none is). pizza's front end sets it before it starts the
// engine, which then runs the self-check instead of re-exec'ing itself; nothing when no change
// is worth it or the user opted out.
std::optional<EnvMap> start_plan();

// Sizes OpenBLAS's own thread pool (openblas_set_num_threads); libtorch's set_num_threads only
// sizes its OpenMP pool, so without this `--threads 1` would still multiply matrices on every
// core. No effect with another BLAS.
void set_threads(int n);

// Measured single-precision GEMM rate of this process's BLAS for n x n x n products with the
// current thread settings (best of a few repetitions), in GFLOP/s. Used by benchmarks.
// Throws pizza::UsageError for n outside 1..8192 and std::runtime_error when no BLAS is found.
double measure_sgemm_gflops(int n);

// The Fortran sgemm_ entry point, including the hidden lengths of its two character arguments
// that gfortran-compiled BLAS (the reference one) expects; OpenBLAS ignores them.
using SgemmFn = void(const char* transa, const char* transb, const int* m, const int* n,
                     const int* k, const float* alpha, const float* a, const int* lda,
                     const float* b, const int* ldb, const float* beta, float* c, const int* ldc,
                     std::size_t transa_len, std::size_t transb_len);

// Whether the OpenBLAS in this process has a DYNAMIC_ARCH kernel set named `core` (it exports a
// gotoblas_<CORE> table per core), i.e. whether OPENBLAS_CORETYPE=<core> would be honoured.
bool loaded_openblas_has_core(std::string_view core);

// This process's sgemm_ (loading libblas.so.3 when nothing provides it yet); nullptr if none.
SgemmFn* process_sgemm();

struct SelfCheckResult {
  bool passed = false;
  double max_rel_error = 0;  // worst |blas - exact| / sum_k |a_ik * b_kj| over all entries
  std::string detail;        // what was compared, or why it could not run
};

// Small sgemm products (64x48 by 48x80, alpha/beta != 0/1, transposed and not) compared with a
// naive double-precision product; passes when every entry is within 1e-4 relative. Cheap
// (well under a millisecond of arithmetic) because it runs at every re-exec'd start.
SelfCheckResult sgemm_self_check(SgemmFn* sgemm);
SelfCheckResult sgemm_self_check();  // with process_sgemm()

}  // namespace pizza::blas
