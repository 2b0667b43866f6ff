// Batch output: JSONL, one compact record per line, written and flushed (fsync'd for files)
// record by record, so a crash or kill loses at most the line being written; --resume then
// drops that torn line and skips the ids already present.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace pizza::batch {

// One record line (no newline): the single-run JSON document `result_json` (any whitespace,
// must be an object) made compact, with "id" inserted as its first key.
std::string record_line(std::string_view id, std::string_view result_json);

// {"id":...,"error":...} for a record that failed.
std::string error_line(std::string_view id, std::string_view message);

struct ResumeState {
  std::set<std::string> done_ids;    // ids of the complete lines (successes and errors)
  std::set<std::string> failed_ids;  // the subset written as {"id","error"}
  size_t lines = 0;                // complete lines kept
  size_t dropped_bytes = 0;        // bytes of a torn last line that were truncated away
};

// Reads an earlier output for --resume: truncates the file back to its last complete line (a
// kill mid-write leaves a line without its newline) and collects the ids of the complete
// lines. A missing file is an empty state; a complete line that is not a JSON object with a
// string "id" is an InputError naming the file and line (it is not our output: refuse to append).
ResumeState prepare_resume(const std::filesystem::path& path);

// Rewrites the output without the lines of `ids` (atomically: a crash leaves the old file or
// the new one), for --retry-failed. Returns the number of lines removed.
size_t remove_records(const std::filesystem::path& path, const std::set<std::string>& ids);

// The complete lines of `path` whose id is in `ids`, by id (for the --resume parameter check).
std::map<std::string, std::string> read_records(const std::filesystem::path& path, const std::set<std::string>& ids);

// Appends lines to a file (created if missing; truncated first unless `append`) or, for an
// empty path, to standard output. Each write_line is one write of the whole line and its
// newline, then fsync (files) so that completed records survive a crash.
class LineSink {
 public:
  LineSink(const std::filesystem::path& path, bool append);
  ~LineSink();
  LineSink(const LineSink&) = delete;
  LineSink& operator=(const LineSink&) = delete;

  void write_line(std::string_view line);

 private:
  std::string name_;
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace pizza::batch
