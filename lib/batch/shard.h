// --shard i/n: a deterministic split of a batch over n workers. Record k (0-based, in file
// order) belongs to shard k % n, so the n shard outputs together hold exactly the records of
// the unsharded run, whatever the machines or timing.
#pragma once

#include <cstddef>
#include <string_view>

namespace pizza::batch {

struct Shard {
  size_t index = 0;
  size_t count = 1;
  bool contains(size_t record_index) const { return record_index % count == index; }
};

// "i/n" with n >= 1 and 0 <= i < n; anything else is a UsageError quoting the value.
Shard parse_shard(std::string_view spec);

}  // namespace pizza::batch
