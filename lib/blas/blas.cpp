#include "blas/blas.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "blas/core_choice.h"
#include "blas/cpu_features.h"
#include "util/error.h"

namespace pizza::blas {
namespace {

// A test binary that does not link libtorch has no BLAS until we load one; libtorch users
// already have it. The handle is deliberately never closed: BLAS stays for the process lifetime.
void ensure_blas_loaded() {
  static void* const handle = []() -> void* {
    if (dlsym(RTLD_DEFAULT, "sgemm_") != nullptr) return nullptr;
    return dlopen("libblas.so.3", RTLD_NOW | RTLD_GLOBAL);
  }();
  (void)handle;
}

template <class Fn>
Fn* lookup(const char* name) {
  ensure_blas_loaded();
  return reinterpret_cast<Fn*>(dlsym(RTLD_DEFAULT, name));
}

// The file that provides `symbol`, as the dynamic loader opened it.
std::string library_path(void* symbol) {
  Dl_info info{};
  if (symbol == nullptr || dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return {};
  return info.dli_fname;
}

EnvMap read_env() {
  EnvMap env;
  for (const char* name : {kCoreTypeVar, kNoReexecVar, kReexecedVar, kOriginalCoreVar, kFallbackVar, kOmpWaitVar, kGompSpinVar}) {
    if (const char* value = std::getenv(name)) env.emplace(name, value);
  }
  return env;
}

std::string env_or_unset(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "(unset)" : std::string(value);
}

// Sets `vars` and replaces this process with a fresh copy of itself. Returns only if exec
// failed, with the previous values restored so the running process still describes itself
// truthfully.
void exec_self_with(const EnvMap& vars, char** argv) {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const auto& [name, value] : vars) {
    const char* old = std::getenv(name.c_str());
    saved.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
    setenv(name.c_str(), value.c_str(), 1);
  }
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  for (const auto& [name, old] : saved) {
    if (old) {
      setenv(name.c_str(), old->c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
}

// Deterministic values in [-0.5, 0.5): cheap, reproducible, and without the structure (zeros,
// repeats) that could hide a wrong kernel.
std::vector<float> test_matrix(std::size_t count, unsigned seed) {
  std::vector<float> v(count);
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned h = static_cast<unsigned>(i) * 2654435761U + seed * 40503U;
    v[i] = static_cast<float>((h >> 8) % 1021) / 1021.0F - 0.5F;
  }
  return v;
}

// One column-major product C = alpha*op(A)*op(B) + beta*C checked against doubles. Returns the
// worst entry error relative to the sum of absolute terms (immune to cancellation).
double checked_product(SgemmFn* sgemm, bool transpose_a, int m, int n, int k) {
  const int lda = transpose_a ? k : m;
  const auto a = test_matrix(static_cast<std::size_t>(m) * k, 1);
  const auto b = test_matrix(static_cast<std::size_t>(k) * n, 2);
  const auto c0 = test_matrix(static_cast<std::size_t>(m) * n, 3);
  auto c = c0;
  const float alpha = 0.75F, beta = 0.5F;
  const char ta = transpose_a ? 'T' : 'N', tb = 'N';
  sgemm(&ta, &tb, &m, &n, &k, &alpha, a.data(), &lda, b.data(), &k, &beta, c.data(), &m, 1, 1);

  double worst = 0;
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double exact = 0, scale = std::fabs(beta * c0[i + j * m]);
      for (int p = 0; p < k; ++p) {
        const double aip = transpose_a ? a[p + i * lda] : a[i + p * lda];
        const double term = alpha * aip * b[p + j * k];
        exact += term;
        scale += std::fabs(term);
      }
      exact += beta * static_cast<double>(c0[i + j * m]);
      const double err = std::fabs(c[i + j * m] - exact) / std::max(scale, 1e-30);
      // NaN from a broken kernel must fail, so compare so that NaN counts as worst.
      worst = std::isnan(err) ? INFINITY : std::max(worst, err);
    }
  }
  return worst;
}

std::string format_gflops(double g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", g);
  return buf;
}

std::string describe(const BlasInfo& info, const char* core_separator, const char* core_suffix) {
  std::string out = info.library == "unknown" ? "no BLAS found" : info.library;
  if (!info.version.empty()) out += " " + info.version;
  if (!info.core.empty()) out += core_separator + std::string("core ") + info.core + core_suffix;
  return out;
}

}  // namespace

// The exported kernel tables tell exactly which OPENBLAS_CORETYPE names this build accepts.
// Unknown names are not rejected by OpenBLAS 0.3.21 but silently mapped to its last core
// (Cooperlake), so pizza never asks for a name without checking here first.
bool loaded_openblas_has_core(std::string_view core) {
  std::string symbol = "gotoblas_";
  for (char c : core) symbol += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return lookup<void>(symbol.c_str()) != nullptr;
}

SgemmFn* process_sgemm() { return lookup<SgemmFn>("sgemm_"); }

void set_threads(int n) {
  if (auto set = lookup<void(int)>("openblas_set_num_threads"); set != nullptr && n > 0) set(n);
}

BlasInfo probe() {
  auto corename = lookup<char*()>("openblas_get_corename");
  auto config = lookup<char*()>("openblas_get_config");
  auto num_threads = lookup<int()>("openblas_get_num_threads");
  SgemmFn* sgemm = process_sgemm();

  BlasInfo info;
  info.library = classify_blas(corename != nullptr || config != nullptr, sgemm != nullptr,
                               library_path(reinterpret_cast<void*>(sgemm)));
  if (const char* text = config != nullptr ? config() : nullptr) {
    info.config = text;
    info.version = parse_openblas_version(info.config);
  }
  if (const char* name = corename != nullptr ? corename() : nullptr) info.core = name;
  if (num_threads != nullptr) info.threads = num_threads();
  return info;
}

std::string summary() { return describe(probe(), " (", ")"); }

std::string version_string() {
  BlasInfo info = probe();
  if (auto plan = start_plan(); plan && plan->contains(kCoreTypeVar)) info.core = plan->at(kCoreTypeVar);
  return std::string("pizza ") + PIZZA_VERSION + " (BLAS: " + describe(info, ", ", "") + ")";
}

SelfCheckResult sgemm_self_check(SgemmFn* sgemm) {
  SelfCheckResult result;
  if (sgemm == nullptr) {
    result.detail = "no sgemm_ in this process";
    return result;
  }
  constexpr int m = 64, n = 80, k = 48;
  result.max_rel_error = std::max(checked_product(sgemm, false, m, n, k),
                                  checked_product(sgemm, true, m, n, k));
  result.passed = result.max_rel_error <= 1e-4;
  char buf[128];
  std::snprintf(buf, sizeof buf, "sgemm %dx%d by %dx%d (N/N and T/N): max relative error %.2e",
                m, k, k, n, result.max_rel_error);
  result.detail = buf;
  return result;
}

SelfCheckResult sgemm_self_check() { return sgemm_self_check(process_sgemm()); }

void maybe_reexec_with_best_core(int argc, char** argv) {
  if (argc < 1 || argv == nullptr || argv[0] == nullptr) return;
  const EnvMap env = read_env();
  if (needs_self_check(env)) {
    const SelfCheckResult check = sgemm_self_check();
    if (auto plan = fallback_plan(env, check.passed)) {
      std::fprintf(stderr,
                   "pizza: warning: OpenBLAS core %s failed the sgemm self-check (%s); "
                   "restarting with OpenBLAS's own choice %s\n",
                   env_or_unset(kCoreTypeVar).c_str(), check.detail.c_str(),
                   plan->at(kCoreTypeVar).c_str());
      exec_self_with(*plan, argv);
      std::fprintf(stderr, "pizza: warning: restart failed; BLAS results may be wrong\n");
    }
    return;
  }
  if (auto plan = start_plan()) exec_self_with(*plan, argv);
}

std::optional<EnvMap> start_plan() {
  return startup_plan(read_env(), probe(), detect_cpu_features(), loaded_openblas_has_core);
}

double measure_sgemm_gflops(int n) {
  if (n < 1 || n > 8192) {
    throw UsageError("measure_sgemm_gflops: n must be between 1 and 8192, got " + std::to_string(n));
  }
  SgemmFn* sgemm = process_sgemm();
  if (sgemm == nullptr) {
    throw std::runtime_error("no BLAS: sgemm_ is not in this process and libblas.so.3 did not load");
  }
  const auto size = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const auto a = test_matrix(size, 1);
  const auto b = test_matrix(size, 2);
  std::vector<float> c(size);
  const float alpha = 1.0F, beta = 0.0F;
  double best_seconds = INFINITY;
  // The first run pays for page faults and thread wake-up; it is excluded.
  for (int rep = 0; rep < 4; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    sgemm("N", "N", &n, &n, &n, &alpha, a.data(), &n, b.data(), &n, &beta, c.data(), &n, 1, 1);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (rep > 0) best_seconds = std::min(best_seconds, elapsed.count());
  }
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  // A tiny n can finish below the clock's resolution; report the rate of one clock tick then.
  return flops / std::max(best_seconds, 1e-9) / 1e9;
}

std::string doctor_report() {
  const BlasInfo info = probe();
  const CpuFeatures cpu = detect_cpu_features();
  const EnvMap env = read_env();
  std::ostringstream out;

  out << "BLAS\n";
  out << "  library:        " << info.library << (info.version.empty() ? "" : " " + info.version) << "\n";
  SgemmFn* sgemm = process_sgemm();
  const std::string path = library_path(reinterpret_cast<void*>(sgemm));
  if (!path.empty()) {
    std::error_code ec;
    const auto real = std::filesystem::canonical(path, ec);
    out << "  loaded from:    " << path;
    if (!ec && real.string() != path) out << " -> " << real.string();
    out << "\n";
  }
  if (!info.config.empty()) out << "  config:         " << info.config << "\n";
  if (info.library == "OpenBLAS") {
    out << "  core:           " << (info.core.empty() ? "(unknown)" : info.core) << ", chosen by "
        << core_origin(env) << "\n";
    auto best = best_core(cpu, loaded_openblas_has_core);
    out << "  best core here: " << best.value_or("(none beyond OpenBLAS's detection)") << "\n";
  }
  if (info.threads > 0) out << "  threads:        " << info.threads << "\n";

  out << "CPU\n";
  out << "  model:          " << (cpu.brand.empty() ? "(unknown)" : cpu.brand) << " (" << cpu.vendor
      << " family " << cpu.family << " model " << cpu.model << ")\n";
  out << "  flags:          " << cpu.flag_list() << "\n";
  out << "  OS saves AVX:   " << (cpu.os_avx ? "yes" : "no")
      << ", AVX-512: " << (cpu.os_avx512 ? "yes" : "no") << "\n";
  out << "  hw threads:     " << std::thread::hardware_concurrency() << "\n";

  out << "Environment\n";
  for (const char* name : {kCoreTypeVar, "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", kOmpWaitVar, kNoReexecVar}) {
    out << "  " << name << "=" << env_or_unset(name) << "\n";
  }

  out << "Measured\n";
  if (sgemm != nullptr) {
    out << "  sgemm n=512:    " << format_gflops(measure_sgemm_gflops(512))
        << " GFLOP/s (best of 3 after a warm-up)\n";
  } else {
    out << "  sgemm:          not measured (no BLAS)\n";
  }
  return out.str();
}

}  // namespace pizza::blas
