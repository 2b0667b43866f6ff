// The pure decision functions, with CPUs and environments written out by hand.
#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "blas/core_choice.h"

using namespace pizza::blas;

namespace {

// A CPU with AVX2/FMA and the OS saving YMM state (Haswell-class), for the given vendor/family.
CpuFeatures avx2_cpu(const std::string& vendor = "GenuineIntel", int family = 6) {
  CpuFeatures f;
  f.vendor = vendor;
  f.family = family;
  f.sse3 = f.ssse3 = f.sse4_1 = f.sse4_2 = true;
  f.avx = f.avx2 = f.fma = true;
  f.os_avx = true;
  return f;
}

// The machine the re-exec was written for: Xeon family 6 model 207 with the full AVX-512 set.
CpuFeatures avx512_cpu(const std::string& vendor = "GenuineIntel", int family = 6) {
  CpuFeatures f = avx2_cpu(vendor, family);
  f.model = 207;
  f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = true;
  f.avx512_bf16 = true;
  f.os_avx512 = true;
  return f;
}

BlasInfo openblas(const std::string& core) {
  BlasInfo b;
  b.library = "OpenBLAS";
  b.version = "0.3.21";
  b.core = core;
  return b;
}

}  // namespace

TEST_CASE("core_rank orders OpenBLAS kernels by vector width") {
  CHECK(core_rank("Prescott") < core_rank("Nehalem"));
  CHECK(core_rank("Nehalem") < core_rank("Sandybridge"));
  CHECK(core_rank("Sandybridge") < core_rank("Haswell"));
  CHECK(core_rank("Haswell") < core_rank("SkylakeX"));
  // Same tier: moving between these is never an improvement.
  CHECK(core_rank("Haswell") == core_rank("Zen"));
  CHECK(core_rank("SkylakeX") == core_rank("Cooperlake"));
  CHECK(core_rank("SkylakeX") == core_rank("SapphireRapids"));
  // Case-insensitive, as OpenBLAS itself compares OPENBLAS_CORETYPE.
  CHECK(core_rank("skylakex") == core_rank("SkylakeX"));
  CHECK(core_rank("PRESCOTT") == core_rank("Prescott"));
  CHECK(core_rank("NoSuchCore") == -1);
  CHECK(core_rank("") == -1);
}

TEST_CASE("candidate_cores maps CPU features to kernels, best first") {
  CHECK(candidate_cores(avx512_cpu()) == std::vector<std::string>{"SkylakeX", "Haswell", "Sandybridge"});
  CHECK(candidate_cores(avx2_cpu()) == std::vector<std::string>{"Haswell", "Sandybridge"});
  // AMD family 17h (Zen 1/2) gets the Zen kernels, Haswell as the next choice.
  CHECK(candidate_cores(avx2_cpu("AuthenticAMD", 0x17)) ==
        std::vector<std::string>{"Zen", "Haswell", "Sandybridge"});
  // AMD family 15h (Excavator) has AVX2 but is no Zen.
  CHECK(candidate_cores(avx2_cpu("AuthenticAMD", 0x15)) == std::vector<std::string>{"Haswell", "Sandybridge"});
  // Zen 4 has the full AVX-512 set.
  CHECK(best_core(avx512_cpu("AuthenticAMD", 0x19)) == "SkylakeX");
}

TEST_CASE("candidate_cores is conservative about partial or OS-disabled features") {
  CpuFeatures no_zmm_state = avx512_cpu();
  no_zmm_state.os_avx512 = false;  // cpuid says AVX-512 but the OS does not save ZMM registers
  CHECK(best_core(no_zmm_state) == "Haswell");

  CpuFeatures knights_landing = avx512_cpu();  // AVX-512F/CD without BW/DQ/VL
  knights_landing.avx512bw = knights_landing.avx512dq = knights_landing.avx512vl = false;
  CHECK(best_core(knights_landing) == "Haswell");

  CpuFeatures no_ymm_state = avx2_cpu();
  no_ymm_state.os_avx = false;
  CHECK_FALSE(best_core(no_ymm_state).has_value());

  CpuFeatures avx_only = avx2_cpu();  // Sandy/Ivy Bridge: AVX without AVX2/FMA
  avx_only.avx2 = avx_only.fma = false;
  CHECK(best_core(avx_only) == "Sandybridge");

  CpuFeatures sse_only;
  sse_only.vendor = "GenuineIntel";
  sse_only.sse3 = sse_only.ssse3 = sse_only.sse4_1 = sse_only.sse4_2 = true;
  CHECK(candidate_cores(sse_only).empty());
  CHECK(candidate_cores(CpuFeatures{}).empty());  // non-x86 build
}

TEST_CASE("choose_core only moves to a strictly better core") {
  const CpuFeatures cpu = avx512_cpu();
  CHECK(choose_core(cpu, "Prescott") == "SkylakeX");
  CHECK(choose_core(cpu, "Haswell") == "SkylakeX");
  CHECK_FALSE(choose_core(cpu, "SkylakeX").has_value());
  CHECK_FALSE(choose_core(cpu, "skylakex").has_value());
  CHECK_FALSE(choose_core(cpu, "Cooperlake").has_value());  // OpenBLAS's own pick on Cooper Lake
  CHECK_FALSE(choose_core(cpu, "SomethingNew").has_value());  // unknown: leave it alone
  CHECK_FALSE(choose_core(cpu, "").has_value());

  CHECK(choose_core(avx2_cpu("AuthenticAMD", 0x19), "Prescott") == "Zen");
  CHECK_FALSE(choose_core(avx2_cpu("AuthenticAMD", 0x19), "Haswell").has_value());
}

TEST_CASE("choose_core skips cores the loaded OpenBLAS build lacks") {
  const CpuFeatures cpu = avx512_cpu();
  auto without_avx512_kernels = [](std::string_view core) { return core != "SkylakeX"; };
  CHECK(choose_core(cpu, "Prescott", without_avx512_kernels) == "Haswell");
  CHECK_FALSE(choose_core(cpu, "Haswell", without_avx512_kernels).has_value());
  auto nothing = [](std::string_view) { return false; };  // e.g. an OpenBLAS without DYNAMIC_ARCH
  CHECK_FALSE(choose_core(cpu, "Prescott", nothing).has_value());
}

TEST_CASE("reexec_plan: Prescott on an AVX-512 CPU re-execs with SkylakeX") {
  auto plan = reexec_plan({}, openblas("Prescott"), avx512_cpu());
  REQUIRE(plan.has_value());
  CHECK(*plan == EnvMap{{"OPENBLAS_CORETYPE", "SkylakeX"},
                        {"PIZZA_BLAS_REEXECED", "1"},
                        {"PIZZA_BLAS_ORIGINAL_CORE", "Prescott"}});
}

TEST_CASE("reexec_plan: nothing when the user or a previous run already decided") {
  const CpuFeatures cpu = avx512_cpu();
  const BlasInfo prescott = openblas("Prescott");
  CHECK_FALSE(reexec_plan({{"OPENBLAS_CORETYPE", "Haswell"}}, prescott, cpu).has_value());
  CHECK_FALSE(reexec_plan({{"OPENBLAS_CORETYPE", ""}}, prescott, cpu).has_value());  // set, empty
  CHECK_FALSE(reexec_plan({{"PIZZA_NO_BLAS_REEXEC", "1"}}, prescott, cpu).has_value());
  CHECK_FALSE(reexec_plan({{"PIZZA_BLAS_REEXECED", "1"}}, prescott, cpu).has_value());
  // Unrelated variables do not matter.
  CHECK(reexec_plan({{"OMP_NUM_THREADS", "1"}}, prescott, cpu).has_value());
}

TEST_CASE("reexec_plan: nothing when the kernel is already good or the BLAS is not OpenBLAS") {
  const CpuFeatures cpu = avx512_cpu();
  CHECK_FALSE(reexec_plan({}, openblas("SkylakeX"), cpu).has_value());
  CHECK_FALSE(reexec_plan({}, openblas("Cooperlake"), cpu).has_value());
  BlasInfo reference;
  reference.library = "reference BLAS";
  CHECK_FALSE(reexec_plan({}, reference, cpu).has_value());
  CHECK_FALSE(reexec_plan({}, openblas("Prescott"), CpuFeatures{}).has_value());
}

TEST_CASE("wait_policy_plan: passive OpenMP threads beside OpenBLAS's pool, unless the user chose") {
  CHECK(wait_policy_plan({}, openblas("SkylakeX")) == EnvMap{{"OMP_WAIT_POLICY", "PASSIVE"}});
  CHECK_FALSE(wait_policy_plan({{"OMP_WAIT_POLICY", "ACTIVE"}}, openblas("SkylakeX")).has_value());
  CHECK_FALSE(wait_policy_plan({{"GOMP_SPINCOUNT", "10000"}}, openblas("SkylakeX")).has_value());
  BlasInfo reference;
  reference.library = "reference BLAS";
  CHECK_FALSE(wait_policy_plan({}, reference).has_value());
}

TEST_CASE("startup_plan: the core and the wait policy in one re-exec, or none") {
  const CpuFeatures cpu = avx512_cpu();
  // Both reasons.
  CHECK(startup_plan({}, openblas("Prescott"), cpu) == EnvMap{{"OPENBLAS_CORETYPE", "SkylakeX"},
                                                              {"PIZZA_BLAS_REEXECED", "1"},
                                                              {"PIZZA_BLAS_ORIGINAL_CORE", "Prescott"},
                                                              {"OMP_WAIT_POLICY", "PASSIVE"}});
  // The core is already the best: the wait policy alone.
  CHECK(startup_plan({}, openblas("SkylakeX"), cpu) == EnvMap{{"PIZZA_BLAS_REEXECED", "1"}, {"OMP_WAIT_POLICY", "PASSIVE"}});
  // The user set the core: the wait policy still applies.
  CHECK(startup_plan({{"OPENBLAS_CORETYPE", "Haswell"}}, openblas("Haswell"), cpu) ==
        EnvMap{{"PIZZA_BLAS_REEXECED", "1"}, {"OMP_WAIT_POLICY", "PASSIVE"}});
  // Nothing to do, opted out, or already the re-exec'd child.
  CHECK_FALSE(startup_plan({{"OMP_WAIT_POLICY", "PASSIVE"}}, openblas("SkylakeX"), cpu).has_value());
  CHECK_FALSE(startup_plan({{"PIZZA_NO_BLAS_REEXEC", "1"}}, openblas("Prescott"), cpu).has_value());
  CHECK_FALSE(startup_plan({{"PIZZA_BLAS_REEXECED", "1"}}, openblas("Prescott"), cpu).has_value());
}

TEST_CASE("fallback_plan returns to OpenBLAS's own core once, only after a failed self-check") {
  const EnvMap child{{"OPENBLAS_CORETYPE", "SkylakeX"},
                     {"PIZZA_BLAS_REEXECED", "1"},
                     {"PIZZA_BLAS_ORIGINAL_CORE", "Prescott"}};
  CHECK(needs_self_check(child));
  CHECK_FALSE(fallback_plan(child, true).has_value());
  auto plan = fallback_plan(child, false);
  REQUIRE(plan.has_value());
  CHECK(*plan == EnvMap{{"OPENBLAS_CORETYPE", "Prescott"}, {"PIZZA_BLAS_FALLBACK", "1"}});

  const EnvMap after_fallback{{"OPENBLAS_CORETYPE", "Prescott"},
                              {"PIZZA_BLAS_REEXECED", "1"},
                              {"PIZZA_BLAS_ORIGINAL_CORE", "Prescott"},
                              {"PIZZA_BLAS_FALLBACK", "1"}};
  CHECK_FALSE(needs_self_check(after_fallback));
  CHECK_FALSE(fallback_plan(after_fallback, false).has_value());  // never loops

  CHECK_FALSE(needs_self_check({}));  // an ordinary start checks nothing
  CHECK_FALSE(fallback_plan({}, false).has_value());
  CHECK_FALSE(fallback_plan({{"PIZZA_BLAS_REEXECED", "1"}}, false).has_value());  // no original
}

TEST_CASE("parse_openblas_version reads the version token of openblas_get_config") {
  CHECK(parse_openblas_version("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64") == "0.3.21");
  CHECK(parse_openblas_version("OpenBLAS 0.3.27.dev USE64BITINT DYNAMIC_ARCH") == "0.3.27.dev");
  CHECK(parse_openblas_version("OpenBLAS 0.3.21") == "0.3.21");
  CHECK(parse_openblas_version("OpenBLAS ") == "");
  CHECK(parse_openblas_version("OpenBLAS DYNAMIC_ARCH") == "");
  CHECK(parse_openblas_version("") == "");
}

TEST_CASE("classify_blas names the implementation") {
  CHECK(classify_blas(true, true, "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3") == "OpenBLAS");
  CHECK(classify_blas(false, true, "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3") == "reference BLAS");
  CHECK(classify_blas(false, true, "/opt/intel/lib/libmkl_rt.so.2") == "Intel MKL");
  CHECK(classify_blas(false, true, "/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3") == "reference BLAS");
  CHECK(classify_blas(false, true, "/usr/lib/libblis.so.4") == "BLIS");
  CHECK(classify_blas(false, true, "/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3") == "ATLAS");
  CHECK(classify_blas(false, false, "") == "unknown");
}

TEST_CASE("core_origin says who picked the running kernel") {
  CHECK(core_origin({}) == "OpenBLAS's own detection");
  CHECK(core_origin({{"OPENBLAS_CORETYPE", "Haswell"}}) == "OPENBLAS_CORETYPE from the environment");
  CHECK(core_origin({{"PIZZA_NO_BLAS_REEXEC", "1"}}) ==
        "OpenBLAS's own detection (PIZZA_NO_BLAS_REEXEC is set)");
  CHECK(core_origin({{"OPENBLAS_CORETYPE", "SkylakeX"},
                     {"PIZZA_BLAS_REEXECED", "1"},
                     {"PIZZA_BLAS_ORIGINAL_CORE", "Prescott"}}) ==
        "pizza, at start-up (OpenBLAS detected Prescott)");
  CHECK(core_origin({{"OPENBLAS_CORETYPE", "Prescott"},
                     {"PIZZA_BLAS_REEXECED", "1"},
                     {"PIZZA_BLAS_FALLBACK", "1"}}) ==
        "OpenBLAS's own detection (pizza's choice failed the sgemm self-check)");
  // Re-exec'd for OMP_WAIT_POLICY only: the kernel is still the user's or OpenBLAS's choice.
  CHECK(core_origin({{"OPENBLAS_CORETYPE", "Haswell"}, {"PIZZA_BLAS_REEXECED", "1"}, {"OMP_WAIT_POLICY", "PASSIVE"}}) ==
        "OPENBLAS_CORETYPE from the environment");
  CHECK(core_origin({{"PIZZA_BLAS_REEXECED", "1"}, {"OMP_WAIT_POLICY", "PASSIVE"}}) == "OpenBLAS's own detection");
}

TEST_CASE("CpuFeatures::flag_list lists present flags in a fixed order") {
  CpuFeatures f;
  CHECK(f.flag_list().empty());
  f.avx2 = f.fma = f.avx512f = true;
  CHECK(f.flag_list() == "avx2 fma avx512f");
}
