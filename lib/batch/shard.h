// --shard i/n: a deterministic split of a batch over n workers. Record k (0-based, in file
// order) belongs to shard k % n, so the n shard outputs together hold exactly the records of
// the unsharded run, whatever the machines or timing.
//
// --shard auto takes i and n from the scheduler that started the worker:
//   Slurm job array      SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT (and SLURM_ARRAY_TASK_MIN
//                        and _STEP, so --array=1-8 or 0-14:2 work as well as 0-7)
//   Kubernetes Indexed Job  JOB_COMPLETION_INDEX; Kubernetes sets no variable for the number
//                        of completions, so it is passed in: --shard auto/N, or PIZZA_SHARD_COUNT=N
//                        in the pod's environment (one manifest value, spec.completions, for both).
// --shard auto/N under Slurm checks N against the array size.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pizza::batch {

struct Shard {
  size_t index = 0;
  size_t count = 1;
  bool contains(size_t record_index) const { return record_index % count == index; }
};

// An environment variable's value, nullopt when unset. The CLI passes the process
// environment; tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// "i/n" with n >= 1 and 0 <= i < n, or "auto" / "auto/N" read from `env` as above. Anything
// else is a UsageError quoting the value; so are missing, malformed or inconsistent variables
// (named with their values), and both schedulers' variables at once.
Shard parse_shard(std::string_view spec, const EnvLookup& env);

}  // namespace pizza::batch
