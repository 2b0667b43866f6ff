#include "batch/runner.h"

#include <vector>

#include "batch/output.h"
#include "util/error.h"
#include "util/progress.h"

namespace pizza::batch {

namespace {

// Exception messages from libtorch carry multi-line backtraces; a record's error is one line.
std::string first_line(std::string_view s) { return std::string(s.substr(0, s.find('\n'))); }

}  // namespace

RunSummary run_records(std::span<const Record> records, const RunConfig& config, const RecordFn& fn) {
  if (config.resume && config.output.empty()) throw UsageError("--resume needs --output FILE");
  RunSummary summary;
  ResumeState done;
  if (config.resume) done = prepare_resume(config.output);
  summary.dropped_bytes = done.dropped_bytes;

  std::vector<const Record*> todo;
  for (const Record& r : records) {
    if (!config.shard.contains(r.index)) continue;
    ++summary.selected;
    if (done.done_ids.contains(r.id)) {
      ++summary.skipped;
      if (done.failed_ids.contains(r.id)) ++summary.failed;
    } else {
      todo.push_back(&r);
    }
  }

  LineSink sink(config.output, config.resume);
  ProgressBar bar("records", config.progress);
  bar.update(0, todo.size());
  for (size_t i = 0; i < todo.size(); ++i) {
    const Record& r = *todo[i];
    std::string line;
    try {
      line = record_line(r.id, fn(r));
      ++summary.ok;
    } catch (const std::exception& e) {
      line = error_line(r.id, first_line(e.what()));
      ++summary.failed;
    }
    sink.write_line(line);
    bar.update(i + 1, todo.size(), summary.failed ? std::to_string(summary.failed) + " failed" : "");
  }
  bar.finish();
  return summary;
}

}  // namespace pizza::batch
