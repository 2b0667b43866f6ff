#include "batch/shard.h"

#include <charconv>
#include <string>

#include "util/error.h"

namespace pizza::batch {

namespace {

bool parse_size(std::string_view s, size_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

[[noreturn]] void fail(const std::string& problem) { throw UsageError("--shard auto: " + problem); }

// A variable that must hold a non-negative integer (nullopt when unset).
std::optional<size_t> env_size(const EnvLookup& env, std::string_view name) {
  const auto v = env(name);
  if (!v) return std::nullopt;
  size_t n = 0;
  if (!parse_size(*v, n)) fail(std::string(name) + "='" + *v + "' is not a non-negative integer");
  return n;
}

Shard check(size_t index, size_t count, const std::string& source) {
  if (count == 0) fail(source + ": the shard count is 0");
  if (index >= count)
    fail(source + ": index " + std::to_string(index) + " is not below the count " + std::to_string(count));
  return {index, count};
}

Shard from_slurm(const EnvLookup& env, size_t id, std::optional<size_t> given_count) {
  const auto count = env_size(env, "SLURM_ARRAY_TASK_COUNT");
  if (!count) fail("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (Slurm 17.11 or later sets both)");
  const size_t min = env_size(env, "SLURM_ARRAY_TASK_MIN").value_or(0);
  const size_t step = env_size(env, "SLURM_ARRAY_TASK_STEP").value_or(1);
  const std::string where = "SLURM_ARRAY_TASK_ID=" + std::to_string(id) + " (SLURM_ARRAY_TASK_MIN=" +
                            std::to_string(min) + ", SLURM_ARRAY_TASK_STEP=" + std::to_string(step) + ")";
  // An array like --array=1-8 or 0-14:2 numbers its tasks from MIN by STEP.
  if (step == 0 || id < min || (id - min) % step != 0) fail(where + " is not a task of the array");
  if (given_count && *given_count != *count)
    fail("--shard auto/" + std::to_string(*given_count) + " but SLURM_ARRAY_TASK_COUNT=" + std::to_string(*count));
  return check((id - min) / step, *count, where + ", SLURM_ARRAY_TASK_COUNT=" + std::to_string(*count));
}

Shard from_kubernetes(const EnvLookup& env, size_t index, std::optional<size_t> given_count) {
  const auto env_count = env_size(env, "PIZZA_SHARD_COUNT");
  if (given_count && env_count && *given_count != *env_count)
    fail("--shard auto/" + std::to_string(*given_count) + " but PIZZA_SHARD_COUNT=" + std::to_string(*env_count));
  const auto count = given_count ? given_count : env_count;
  if (!count)
    fail("JOB_COMPLETION_INDEX=" + std::to_string(index) +
         " but no shard count: Kubernetes does not export the Job's completions, pass --shard auto/N or set "
         "PIZZA_SHARD_COUNT=N (N = spec.completions)");
  return check(index, *count, "JOB_COMPLETION_INDEX=" + std::to_string(index) + ", count " + std::to_string(*count));
}

}  // namespace

Shard parse_shard(std::string_view spec, const EnvLookup& env) {
  const size_t slash = spec.find('/');
  if (spec.substr(0, slash) == "auto") {
    std::optional<size_t> given_count;
    if (slash != std::string_view::npos) {
      size_t n = 0;
      if (!parse_size(spec.substr(slash + 1), n) || n == 0)
        throw UsageError("--shard: expected auto/N with N >= 1, got '" + std::string(spec) + "'");
      given_count = n;
    }
    const auto slurm_id = env_size(env, "SLURM_ARRAY_TASK_ID");
    const auto k8s_index = env_size(env, "JOB_COMPLETION_INDEX");
    if (slurm_id && k8s_index)
      fail("both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; use --shard i/n to choose");
    if (slurm_id) return from_slurm(env, *slurm_id, given_count);
    if (k8s_index) return from_kubernetes(env, *k8s_index, given_count);
    fail("neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm job array) is set");
  }
  Shard s;
  if (slash == std::string_view::npos || !parse_size(spec.substr(0, slash), s.index) ||
      !parse_size(spec.substr(slash + 1), s.count) || s.count == 0 || s.index >= s.count)
    throw UsageError("--shard: expected i/n with 0 <= i < n (e.g. 0/4) or auto[/n], got '" + std::string(spec) + "'");
  return s;
}

}  // namespace pizza::batch
