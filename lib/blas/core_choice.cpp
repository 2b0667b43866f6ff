#include "blas/core_choice.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace pizza::blas {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// OpenBLAS x86-64 DYNAMIC_ARCH core names grouped by the widest vector unit their kernels use.
// Within a tier the kernels are comparable, so moving sideways (e.g. Cooperlake -> SkylakeX)
// is never worth a re-exec.
constexpr std::array<std::pair<std::string_view, int>, 27> kCoreTiers{{
    {"Katmai", 0},      {"Coppermine", 0}, {"Northwood", 0},      {"Prescott", 0},
    {"Banias", 0},      {"Athlon", 0},     {"Opteron", 0},        {"Opteron_SSE3", 0},
    {"Barcelona", 0},   {"Bobcat", 0},     {"Core2", 1},          {"Penryn", 1},
    {"Dunnington", 1},  {"Nehalem", 1},    {"Atom", 1},           {"Nano", 1},
    {"Sandybridge", 2}, {"Bulldozer", 2},  {"Piledriver", 2},     {"Steamroller", 2},
    {"Excavator", 2},   {"Haswell", 3},    {"Zen", 3},            {"SkylakeX", 4},
    {"Cooperlake", 4},  {"SapphireRapids", 4}, {"Generic", 0},
}};

const std::string* find(const EnvMap& env, std::string_view name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

bool is_set(const EnvMap& env, std::string_view name) { return find(env, name) != nullptr; }

}  // namespace

int core_rank(std::string_view core) {
  for (const auto& [name, tier] : kCoreTiers) {
    if (iequals(name, core)) return tier;
  }
  return -1;
}

std::vector<std::string> candidate_cores(const CpuFeatures& cpu) {
  std::vector<std::string> out;
  if (cpu.has_avx512_skylakex()) out.emplace_back("SkylakeX");
  if (cpu.has_avx2_fma()) {
    // OpenBLAS's Zen kernels are tuned for AMD family 17h and later; Hygon Dhyana is a Zen too.
    const bool zen = (cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine") && cpu.family >= 0x17;
    if (zen) out.emplace_back("Zen");
    out.emplace_back("Haswell");
  }
  if (cpu.os_avx && cpu.avx) out.emplace_back("Sandybridge");
  return out;
}

std::optional<std::string> best_core(const CpuFeatures& cpu, const CoreSupported& supported) {
  for (auto& core : candidate_cores(cpu)) {
    if (!supported || supported(core)) return core;
  }
  return std::nullopt;
}

std::optional<std::string> choose_core(const CpuFeatures& cpu, std::string_view current_core,
                                       const CoreSupported& supported) {
  const int current = core_rank(current_core);
  if (current < 0) return std::nullopt;  // unknown or empty: do not second-guess it
  auto best = best_core(cpu, supported);
  if (!best || core_rank(*best) <= current) return std::nullopt;
  return best;
}

std::optional<EnvMap> reexec_plan(const EnvMap& env, const BlasInfo& blas, const CpuFeatures& cpu,
                                  const CoreSupported& supported) {
  if (is_set(env, kCoreTypeVar) || is_set(env, kNoReexecVar) || is_set(env, kReexecedVar)) {
    return std::nullopt;
  }
  if (blas.library != "OpenBLAS") return std::nullopt;
  auto core = choose_core(cpu, blas.core, supported);
  if (!core) return std::nullopt;
  return EnvMap{{kCoreTypeVar, *core}, {kReexecedVar, "1"}, {kOriginalCoreVar, blas.core}};
}

std::optional<EnvMap> wait_policy_plan(const EnvMap& env, const BlasInfo& blas) {
  if (is_set(env, kOmpWaitVar) || is_set(env, kGompSpinVar) || blas.library != "OpenBLAS") return std::nullopt;
  return EnvMap{{kOmpWaitVar, "PASSIVE"}};
}

std::optional<EnvMap> startup_plan(const EnvMap& env, const BlasInfo& blas, const CpuFeatures& cpu,
                                   const CoreSupported& supported) {
  if (is_set(env, kNoReexecVar) || is_set(env, kReexecedVar)) return std::nullopt;
  EnvMap plan = reexec_plan(env, blas, cpu, supported).value_or(EnvMap{});
  if (auto wait = wait_policy_plan(env, blas)) plan.insert(wait->begin(), wait->end());
  if (plan.empty()) return std::nullopt;
  plan.insert_or_assign(kReexecedVar, "1");
  return plan;
}

bool needs_self_check(const EnvMap& env) {
  return is_set(env, kReexecedVar) && !is_set(env, kFallbackVar);
}

std::optional<EnvMap> fallback_plan(const EnvMap& env, bool self_check_passed) {
  if (self_check_passed || !needs_self_check(env)) return std::nullopt;
  const std::string* original = find(env, kOriginalCoreVar);
  if (original == nullptr || original->empty()) return std::nullopt;
  return EnvMap{{kCoreTypeVar, *original}, {kFallbackVar, "1"}};
}

std::string parse_openblas_version(std::string_view config) {
  constexpr std::string_view prefix = "OpenBLAS ";
  auto pos = config.find(prefix);
  if (pos == std::string_view::npos) return {};
  auto rest = config.substr(pos + prefix.size());
  auto end = rest.find(' ');
  std::string_view version = rest.substr(0, end);
  // A version starts with a digit; anything else means the format changed.
  if (version.empty() || !std::isdigit(static_cast<unsigned char>(version.front()))) return {};
  return std::string(version);
}

std::string classify_blas(bool has_openblas_api, bool has_sgemm, std::string_view library_path) {
  if (has_openblas_api) return "OpenBLAS";
  if (!has_sgemm) return "unknown";
  // Other optimized libraries are recognised by their file name only; Debian's reference BLAS
  // (libblas3) is the remaining provider of a plain sgemm_.
  const std::string path = lower(library_path);
  const auto slash = path.find_last_of('/');
  const std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
  if (file.find("mkl") != std::string::npos) return "Intel MKL";
  if (file.find("blis") != std::string::npos) return "BLIS";
  if (file.find("atlas") != std::string::npos || path.find("/atlas/") != std::string::npos) return "ATLAS";
  return "reference BLAS";
}

std::string core_origin(const EnvMap& env) {
  const std::string* original = find(env, kOriginalCoreVar);
  const std::string detected = original != nullptr && !original->empty() ? *original : "?";
  if (is_set(env, kFallbackVar)) {
    return "OpenBLAS's own detection (pizza's choice failed the sgemm self-check)";
  }
  // The start plan sets PIZZA_BLAS_ORIGINAL_CORE only when it chose the core; one made for the OpenMP
  // wait policy alone leaves the core to the user's OPENBLAS_CORETYPE or OpenBLAS.
  if (is_set(env, kReexecedVar) && original != nullptr) return "pizza, at start-up (OpenBLAS detected " + detected + ")";
  if (is_set(env, kCoreTypeVar)) return "OPENBLAS_CORETYPE from the environment";
  if (is_set(env, kNoReexecVar)) return "OpenBLAS's own detection (PIZZA_NO_BLAS_REEXEC is set)";
  return "OpenBLAS's own detection";
}

}  // namespace pizza::blas
