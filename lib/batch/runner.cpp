#include "batch/runner.h"

#include <map>
#include <optional>
#include <vector>

#include "batch/output.h"
#include "diff/diff.h"
#include "util/error.h"
#include "util/json_writer.h"
#include "util/progress.h"

namespace pizza::batch {

namespace {

// Exception messages from libtorch carry multi-line backtraces; a record's error is one line.
std::string first_line(std::string_view s) { return std::string(s.substr(0, s.find('\n'))); }

// Records with the same overrides must come out of the same run parameters; records whose
// overrides differ may differ legitimately (a record's own "method"), so only those are compared.
std::string override_key(const Record& r) {
  std::string key;
  for (const auto& [name, json] : r.overrides) key += name + '=' + json + '\n';
  return key;
}

// nullopt for a line that is not an attribution result (nothing to compare it with).
std::optional<std::vector<std::pair<std::string, std::string>>> identity_of(std::string_view json, const std::string& name) {
  try {
    const diff::ResultsFile file = diff::parse_results(std::string(json), name);
    return run_identity(file.records.at(0).result);
  } catch (const InputError&) {
    return std::nullopt;
  }
}

// --resume without --force: the output's records against what this run produces.
class ParameterCheck {
 public:
  // `existing`: per override key, the first successful record of the output with it.
  ParameterCheck(std::string output, std::map<std::string, std::pair<std::string, std::string>> existing)
      : output_(std::move(output)), existing_(std::move(existing)) {}

  // Throws InputError when `json`, the new result of `record`, was made with other run
  // parameters than the output's record with the same overrides. Checked once per key.
  void check(const Record& record, std::string_view json) {
    auto it = existing_.find(override_key(record));
    if (it == existing_.end()) return;
    const auto [old_id, old_line] = it->second;  // a copy: the entry is erased below
    const auto before_id = identity_of(old_line, output_);
    const auto now_id = identity_of(json, output_);
    existing_.erase(it);  // the same key gives the same parameters: once is enough
    if (!before_id || !now_id) return;
    const auto &before = *before_id, &now = *now_id;
    const auto value_in = [](const auto& fields, const std::string& name) -> std::string {
      for (const auto& [n, v] : fields)
        if (n == name) return v;
      return "(none)";
    };
    std::vector<std::string> names;
    for (const auto& [n, v] : before) names.push_back(n);
    for (const auto& [n, v] : now) names.push_back(n);
    for (const std::string& name : names) {
      const std::string was = value_in(before, name), is = value_in(now, name);
      if (was == is) continue;
      throw InputError(output_ + ": --resume: record \"" + json_escape(old_id) + "\" there has " + name + " " + was +
                       ", this run gives record \"" + json_escape(record.id) + "\" " + is +
                       "; pass --force to mix runs in one file, or write to another --output");
    }
  }

 private:
  std::string output_;
  std::map<std::string, std::pair<std::string, std::string>> existing_;
};

}  // namespace

RunSummary run_records(std::span<const Record> records, const RunConfig& config, const RecordFn& fn) {
  if (config.resume && config.output.empty()) throw UsageError("--resume needs --output FILE");
  if ((config.retry_failed || config.force) && !config.resume)
    throw UsageError(std::string(config.force ? "--force" : "--retry-failed") + " needs --resume");
  RunSummary summary;
  ResumeState done;
  if (config.resume) done = prepare_resume(config.output);
  summary.dropped_bytes = done.dropped_bytes;
  if (config.retry_failed && !done.failed_ids.empty()) {
    // Removed before any new line is appended, so the file never holds an id twice.
    summary.retried = remove_records(config.output, done.failed_ids);
    for (const std::string& id : done.failed_ids) done.done_ids.erase(id);
    done.failed_ids.clear();
  }

  std::vector<const Record*> todo;
  std::map<std::string, std::string> first_done;  // override key -> id of a successful record
  for (const Record& r : records) {
    if (!config.shard.contains(r.index)) continue;
    ++summary.selected;
    if (done.done_ids.contains(r.id)) {
      ++summary.skipped;
      if (done.failed_ids.contains(r.id)) {
        ++summary.failed;
      } else {
        first_done.emplace(override_key(r), r.id);
      }
    } else {
      todo.push_back(&r);
    }
  }
  std::optional<ParameterCheck> parameters;
  if (config.resume && !config.force && !todo.empty()) {
    std::set<std::string> ids;
    for (const auto& [key, id] : first_done) ids.insert(id);
    const auto lines = read_records(config.output, ids);
    std::map<std::string, std::pair<std::string, std::string>> existing;
    for (const auto& [key, id] : first_done)
      if (auto it = lines.find(id); it != lines.end()) existing.emplace(key, std::pair{id, it->second});
    parameters.emplace(config.output, std::move(existing));
  }

  LineSink sink(config.output, config.resume);
  ProgressBar bar("records", config.progress);
  bar.update(0, todo.size());
  for (size_t i = 0; i < todo.size(); ++i) {
    const Record& r = *todo[i];
    std::string line, json;
    bool ok = false;
    try {
      json = fn(r);
      line = record_line(r.id, json);
      ok = true;
    } catch (const std::exception& e) {
      line = error_line(r.id, first_line(e.what()));
      ++summary.failed;
    }
    // Outside the try: a mismatch stops the run, it is not this record's failure.
    if (ok && parameters) parameters->check(r, json);
    if (ok) ++summary.ok;
    sink.write_line(line);
    bar.update(i + 1, todo.size(), summary.failed ? std::to_string(summary.failed) + " failed" : "");
  }
  bar.finish();
  return summary;
}

}  // namespace pizza::batch
