#include "batch/output.h"

#include <fcntl.h>
#include <unistd.h>

#include <simdjson.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/file.h"
#include "util/json_writer.h"

namespace pizza::batch {

namespace {

std::string id_prefix(std::string_view id) { return "{\"id\":\"" + json_escape(id) + "\""; }

}  // namespace

std::string record_line(std::string_view id, std::string_view result_json) {
  std::string compact(result_json.size(), '\0');
  size_t len = 0;
  if (simdjson::minify(result_json.data(), result_json.size(), compact.data(), len) != simdjson::SUCCESS)
    throw InputError("record \"" + json_escape(id) + "\": the result is not valid JSON");
  compact.resize(len);
  if (compact.size() < 2 || compact.front() != '{' || compact.back() != '}')
    throw InputError("record \"" + json_escape(id) + "\": the result is not a JSON object");
  std::string line = id_prefix(id);
  if (compact.size() > 2) line += ',';
  line.append(compact, 1);
  return line;
}

std::string error_line(std::string_view id, std::string_view message) {
  return id_prefix(id) + ",\"error\":\"" + json_escape(message) + "\"}";
}

ResumeState prepare_resume(const std::filesystem::path& path) {
  ResumeState state;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return state;
  const std::string content = read_file(path);
  const size_t keep = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
  state.dropped_bytes = content.size() - keep;
  if (state.dropped_bytes > 0) {
    std::filesystem::resize_file(path, keep, ec);
    if (ec) throw InputError("cannot truncate the torn last line of " + path.string() + ": " + ec.message());
  }
  simdjson::dom::parser parser;
  size_t line_no = 0, begin = 0;
  while (begin < keep) {
    const size_t end = content.find('\n', begin);
    const std::string_view line(content.data() + begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (line.empty()) continue;
    simdjson::dom::element doc;
    std::string_view id;
    if (parser.parse(line.data(), line.size()).get(doc) || doc["id"].get(id))
      throw InputError(path.string() + ":" + std::to_string(line_no) +
                       ": not a batch record (no JSON \"id\"); refusing to --resume into this file");
    state.done_ids.emplace(id);
    if (doc["error"].error() == simdjson::SUCCESS) state.failed_ids.emplace(id);
    ++state.lines;
  }
  return state;
}

namespace {

// Calls fn(id, line) for each complete line that is a JSON object with a string "id".
template <class Fn>
void for_each_record(const std::string& content, Fn&& fn) {
  simdjson::dom::parser parser;
  size_t begin = 0;
  while (begin < content.size()) {
    size_t end = content.find('\n', begin);
    if (end == std::string::npos) end = content.size();
    const std::string_view line(content.data() + begin, end - begin);
    begin = end + 1;
    simdjson::dom::element doc;
    std::string_view id;
    if (line.empty() || parser.parse(line.data(), line.size()).get(doc) || doc["id"].get(id)) continue;
    fn(id, line);
  }
}

}  // namespace

size_t remove_records(const std::filesystem::path& path, const std::set<std::string>& ids) {
  if (ids.empty()) return 0;
  const std::string content = read_file(path);
  std::string kept;
  size_t removed = 0;
  for_each_record(content, [&](std::string_view id, std::string_view line) {
    if (ids.contains(std::string(id))) {
      ++removed;
    } else {
      kept.append(line).push_back('\n');
    }
  });
  write_file_atomic(path, kept);
  return removed;
}

std::map<std::string, std::string> read_records(const std::filesystem::path& path, const std::set<std::string>& ids) {
  std::map<std::string, std::string> out;
  if (ids.empty()) return out;
  for_each_record(read_file(path), [&](std::string_view id, std::string_view line) {
    if (ids.contains(std::string(id))) out.emplace(std::string(id), std::string(line));
  });
  return out;
}

LineSink::LineSink(const std::filesystem::path& path, bool append) : name_(path.string()) {
  if (path.empty()) {
    name_ = "standard output";
    fd_ = STDOUT_FILENO;
    return;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd_ < 0) throw InputError("cannot write " + name_ + ": " + std::strerror(errno));
  owned_ = true;
}

LineSink::~LineSink() {
  if (owned_) ::close(fd_);
}

void LineSink::write_line(std::string_view line) {
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line).push_back('\n');
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t n = ::write(fd_, buf.data() + off, buf.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError("cannot write " + name_ + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (owned_ && ::fsync(fd_) != 0) throw InputError("cannot sync " + name_ + ": " + std::strerror(errno));
}

}  // namespace pizza::batch
