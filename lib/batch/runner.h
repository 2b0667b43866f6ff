// The batch loop, independent of any model: selects the records of this shard that the output
// does not already hold, calls the per-record function in file order, and writes one line per
// record. A record that throws becomes an {"id","error"} line and the run goes on.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>

#include "batch/records.h"
#include "batch/shard.h"

namespace pizza::batch {

struct RunConfig {
  std::string output;   // empty: standard output
  bool resume = false;  // needs output: keep its complete lines and skip their ids
  Shard shard;
  bool progress = true;  // progress bar on stderr (drawn only when stderr is a terminal)
  // With resume: drop the output's error records and run those records again.
  bool retry_failed = false;
  // With resume: append even when the output's records were made with other run parameters.
  // Without it, the first new record whose overrides match an existing record's is checked
  // against it (run_identity: model, method, target, unit, parameters, device, dtype) before
  // it is written, and a difference is an InputError naming the field and both values.
  bool force = false;
};

struct RunSummary {
  size_t selected = 0;  // records of this shard
  size_t skipped = 0;   // already in the output (--resume)
  size_t retried = 0;   // error records dropped from the output to run again (--retry-failed)
  size_t ok = 0;      // written by this run
  size_t failed = 0;  // error records of this shard in the output, including resumed ones
  size_t dropped_bytes = 0;  // torn last line removed by --resume
};

// Returns the single-run JSON document of one record; throws to fail that record (its
// exception message, first line, becomes the "error").
using RecordFn = std::function<std::string(const Record&)>;

// Errors writing the output are fatal (InputError): nothing after them could be saved.
RunSummary run_records(std::span<const Record> records, const RunConfig& config, const RecordFn& fn);

}  // namespace pizza::batch
