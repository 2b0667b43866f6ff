// The BLAS this machine actually provides: probing it, checking its sgemm, measuring it, and the
// start-up re-exec run end to end in child processes of this test binary.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "blas/blas.h"
#include "blas/core_choice.h"
#include "support/paths.h"
#include "util/error.h"

extern char** environ;

using namespace pizza::blas;

namespace {

// Test-only variables: where the child writes its report, and whether it runs the re-exec.
constexpr const char* kReportVar = "PIZZA_TEST_BLAS_REPORT";
constexpr const char* kCallReexecVar = "PIZZA_TEST_BLAS_CALL_REEXEC";
constexpr const char* kChildTest = "blas child report";

std::vector<std::string> own_cmdline() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

using Report = std::map<std::string, std::string>;

Report read_report(const std::filesystem::path& path) {
  std::ifstream in(path);
  Report report;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) report[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return report;
}

// Runs this test binary's hidden child test in a clean BLAS environment (no OPENBLAS_CORETYPE,
// no PIZZA_* state inherited from whoever runs the tests) plus `extra` assignments, and returns
// what the child reported. Its stderr is returned under the key "stderr".
Report run_child(const std::vector<std::string>& extra) {
  pizza::test::TempDir dir;
  const auto report_path = dir / "report.txt";
  const auto err_path = dir / "stderr.txt";
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    if (var.starts_with("OPENBLAS_CORETYPE=") || var.starts_with("PIZZA_")) continue;
    env.push_back(var);
  }
  env.push_back(std::string(kReportVar) + "=" + report_path.string());
  env.insert(env.end(), extra.begin(), extra.end());

  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args{exe, kChildTest};
  auto to_ptrs = [](std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  auto argv = to_ptrs(args);
  auto envp = to_ptrs(env);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  Report report = read_report(report_path);
  std::ifstream err(err_path);
  report["stderr"] = std::string(std::istreambuf_iterator<char>(err), {});
  return report;
}

// A deliberately wrong sgemm: the correct product, then one entry off by `error` relative.
float g_injected_error = 0;
void slightly_wrong_sgemm(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                          const float* alpha, const float* a, const int* lda, const float* b,
                          const int* ldb, const float* beta, float* c, const int* ldc,
                          std::size_t la, std::size_t lb) {
  process_sgemm()(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, la, lb);
  c[*ldc * (*n / 2) + *m / 3] *= 1.0F + g_injected_error;
}

}  // namespace

// Not run by ctest (hidden tag): the body of the child process started by run_child().
TEST_CASE("blas child report", "[.child]") {
  const char* report_path = std::getenv(kReportVar);
  REQUIRE(report_path != nullptr);
  if (std::getenv(kCallReexecVar) != nullptr) {
    const auto args = own_cmdline();
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& s : copy) argv.push_back(s.data());
    argv.push_back(nullptr);
    maybe_reexec_with_best_core(static_cast<int>(copy.size()), argv.data());
  }
  const BlasInfo info = probe();
  const SelfCheckResult check = sgemm_self_check();
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string("(unset)") : std::string(v);
  };
  std::ofstream out(report_path);
  out << "library=" << info.library << "\ncore=" << info.core << "\nversion=" << info.version
      << "\nself_check=" << (check.passed ? "pass" : "FAIL") << "\nreexeced=" << env(kReexecedVar)
      << "\noriginal=" << env(kOriginalCoreVar) << "\nfallback=" << env(kFallbackVar)
      << "\ncoretype=" << env(kCoreTypeVar) << "\nomp_wait=" << env(kOmpWaitVar) << "\n";
}

TEST_CASE("probe finds OpenBLAS on this machine") {
  const BlasInfo info = probe();
  CHECK(info.library == "OpenBLAS");
  CHECK(std::regex_match(info.version, std::regex(R"(\d+\.\d+\.\d+.*)")));
  CHECK_FALSE(info.core.empty());
  CHECK(info.threads >= 1);
  // openblas_get_config ends with the active core, a second source for the same fact.
  CHECK(info.config.find(info.core) != std::string::npos);
  CHECK(info.config.starts_with("OpenBLAS " + info.version));
  // This OpenBLAS build has the AVX-512 kernels pizza may ask for, and no made-up ones.
  CHECK(loaded_openblas_has_core("SkylakeX"));
  CHECK(loaded_openblas_has_core("Prescott"));
  CHECK_FALSE(loaded_openblas_has_core("NoSuchCore"));
}

TEST_CASE("set_threads sizes OpenBLAS's thread pool") {
  const int before = probe().threads;
  set_threads(1);
  CHECK(probe().threads == 1);
  set_threads(2);
  CHECK(probe().threads == 2);
  set_threads(0);  // ignored
  CHECK(probe().threads == 2);
  set_threads(before);
}

TEST_CASE("summary and version_string describe the BLAS") {
  CHECK(std::regex_match(summary(), std::regex(R"(OpenBLAS \d+\.\d+\.\d+\S* \(core \w+\))")));
  CHECK(std::regex_match(version_string(),
                         std::regex(R"(pizza \S+ \(BLAS: OpenBLAS \d+\.\d+\.\d+\S*, core \w+\))")));
  CHECK(version_string().starts_with(std::string("pizza ") + PIZZA_VERSION + " "));
}

TEST_CASE("this process's sgemm computes a product worked out by hand") {
  SgemmFn* sgemm = process_sgemm();
  REQUIRE(sgemm != nullptr);
  // Column-major A = [1 2 3; 4 5 6] (2x3), B = [7 8; 9 10; 11 12] (3x2).
  const float a[] = {1, 4, 2, 5, 3, 6};
  const float b[] = {7, 9, 11, 8, 10, 12};
  float c[4] = {};
  const int m = 2, n = 2, k = 3;
  const float alpha = 1, beta = 0;
  sgemm("N", "N", &m, &n, &k, &alpha, a, &m, b, &k, &beta, c, &m, 1, 1);
  // A*B = [1*7+2*9+3*11  1*8+2*10+3*12; 4*7+5*9+6*11  4*8+5*10+6*12] = [58 64; 139 154].
  CHECK(c[0] == 58);
  CHECK(c[1] == 139);
  CHECK(c[2] == 64);
  CHECK(c[3] == 154);
}

TEST_CASE("sgemm self-check passes with the kernel this process runs") {
  const SelfCheckResult check = sgemm_self_check();
  INFO(check.detail);
  CHECK(check.passed);
  CHECK(check.max_rel_error < 1e-5);  // float rounding over k=48 terms stays near 1e-7
}

TEST_CASE("sgemm self-check rejects a kernel with a small error, and a missing one") {
  g_injected_error = 1e-3F;
  const SelfCheckResult wrong = sgemm_self_check(&slightly_wrong_sgemm);
  CHECK_FALSE(wrong.passed);
  CHECK(wrong.max_rel_error > 1e-4);
  g_injected_error = NAN;
  CHECK_FALSE(sgemm_self_check(&slightly_wrong_sgemm).passed);
  g_injected_error = 0;
  CHECK(sgemm_self_check(&slightly_wrong_sgemm).passed);  // the wrapper itself is harmless
  CHECK_FALSE(sgemm_self_check(nullptr).passed);
}

TEST_CASE("measure_sgemm_gflops reports a positive rate and rejects bad sizes") {
  const double g = measure_sgemm_gflops(128);
  CHECK(std::isfinite(g));
  CHECK(g > 0);
  CHECK_THROWS_AS(measure_sgemm_gflops(0), pizza::UsageError);
  CHECK_THROWS_AS(measure_sgemm_gflops(-3), pizza::UsageError);
  CHECK_THROWS_AS(measure_sgemm_gflops(100000), pizza::UsageError);
}

TEST_CASE("doctor_report covers library, core, CPU, environment and a measurement") {
  const std::string report = doctor_report();
  for (const char* needle : {"library:        OpenBLAS", "loaded from:", "core:", "chosen by",
                             "model:", "flags:", "hw threads:", "OPENBLAS_CORETYPE=",
                             "OPENBLAS_NUM_THREADS=", "OMP_NUM_THREADS=", "sgemm n=512:", "GFLOP/s"}) {
    INFO(needle);
    CHECK(report.find(needle) != std::string::npos);
  }
}

TEST_CASE("re-exec end to end: a better core is chosen at start, results stay correct") {
  // What OpenBLAS picks by itself, with pizza kept out of the way.
  const Report own = run_child({std::string(kNoReexecVar) + "=1"});
  REQUIRE(own.at("library") == "OpenBLAS");
  CHECK(own.at("reexeced") == "(unset)");
  CHECK(own.at("self_check") == "pass");

  const Report started = run_child({std::string(kCallReexecVar) + "=1"});
  CHECK(started.at("self_check") == "pass");
  CHECK(started.at("fallback") == "(unset)");
  CHECK(started.at("stderr").find("warning") == std::string::npos);
  const auto better = choose_core(detect_cpu_features(), own.at("core"), loaded_openblas_has_core);
  // Re-exec'd in any case: OpenMP's threads are made passive beside OpenBLAS's own pool.
  CHECK(started.at("reexeced") == "1");
  CHECK(started.at("omp_wait") == "PASSIVE");
  if (better) {
    CHECK(started.at("core") == *better);
    CHECK(started.at("original") == own.at("core"));
    CHECK(started.at("coretype") == *better);
  } else {
    CHECK(started.at("core") == own.at("core"));
    CHECK(started.at("original") == "(unset)");
  }
}

TEST_CASE("re-exec end to end: the machine this was written for moves Prescott to SkylakeX") {
  // Xeon family 6 model 207 with AVX-512 where OpenBLAS 0.3.21 falls back to Prescott.
  const CpuFeatures cpu = detect_cpu_features();
  const Report own = run_child({std::string(kNoReexecVar) + "=1"});
  if (!(cpu.has_avx512_skylakex() && own.at("core") == "Prescott")) {
    WARN("not that machine (core " << own.at("core") << "); covered by the general case");
    return;
  }
  const Report started = run_child({std::string(kCallReexecVar) + "=1"});
  CHECK(started.at("core") == "SkylakeX");
  CHECK(started.at("original") == "Prescott");
}

TEST_CASE("re-exec end to end: the user's OPENBLAS_CORETYPE and OMP_WAIT_POLICY are never overridden") {
  Report started = run_child({std::string(kCallReexecVar) + "=1", "OPENBLAS_CORETYPE=Haswell"});
  CHECK(started.at("core") == "Haswell");
  CHECK(started.at("coretype") == "Haswell");
  CHECK(started.at("omp_wait") == "PASSIVE");  // the one thing left to set
  CHECK(started.at("self_check") == "pass");
  started = run_child({std::string(kCallReexecVar) + "=1", "OPENBLAS_CORETYPE=Haswell", "OMP_WAIT_POLICY=ACTIVE"});
  CHECK(started.at("core") == "Haswell");
  CHECK(started.at("omp_wait") == "ACTIVE");
  CHECK(started.at("reexeced") == "(unset)");  // nothing to change: no re-exec
}

TEST_CASE("probe recognises the reference BLAS and leaves it alone") {
  // Debian's reference BLAS (libblas3) sits beside the alternatives link; loading it first via
  // LD_LIBRARY_PATH makes the child's dlopen("libblas.so.3") pick it instead of OpenBLAS.
  const std::filesystem::path reference = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  REQUIRE(std::filesystem::exists(reference));
  const Report child = run_child({std::string(kCallReexecVar) + "=1",
                                  "LD_LIBRARY_PATH=" + reference.parent_path().string()});
  CHECK(child.at("library") == "reference BLAS");
  CHECK(child.at("core").empty());
  CHECK(child.at("version").empty());
  CHECK(child.at("reexeced") == "(unset)");
  CHECK(child.at("self_check") == "pass");  // also proves the Fortran calling convention
}
