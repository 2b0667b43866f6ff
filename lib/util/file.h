// Small file helpers shared by every reader and writer.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace pizza {

// What a file being read may be. Model artefacts (weights, config.json, tokenizer files, cache
// entries) must be regular files: opening a FIFO put in their place would block forever.
// Inputs a user may hand over as a stream (a key file given as `<(pass show key)`, prompts or
// results piped in) may also be FIFOs, pipes or character devices.
enum class FileSource { regular, stream_ok };

// Reads a whole file; throws InputError naming the path when it cannot, or when it is not a
// kind `source` allows (checked without blocking: the file is opened O_NONBLOCK first).
std::string read_file(const std::filesystem::path& path, FileSource source = FileSource::regular);

// Writes `contents` to `path`. A regular file (or a new one) is replaced atomically: a temp
// file in the same directory, fsync'd, then renamed over it, so readers never see a
// half-written file. A symlink is followed and its target written (the link stays a link).
// Character devices and FIFOs (/dev/stdout, /dev/null, a named pipe) are written in place, as
// a shell redirection would; directories, sockets and block devices are refused.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Checks, before any work, that write_file_atomic(path, ...) can succeed: an existing target
// is writable and of a kind it writes, or a new file's directory exists and is writable.
// Throws InputError naming the path and the reason.
void check_writable(const std::filesystem::path& path);

// How a MappedFile holds the file's bytes.
enum class Residency {
  // A private read-only file mapping: no copy, pages load on first touch. A file truncated or
  // rewritten in place while mapped shows through (SIGBUS past a new end, changed bytes).
  mapped,
  // Read once into anonymous memory (--no-mmap): later changes to the file cannot reach it.
  copied,
};

// Read-only view of a whole regular file (RAII), mapped or copied. Empty files give an empty
// view.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path, Residency residency = Residency::mapped);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pizza
