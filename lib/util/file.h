// Small file helpers shared by every reader and writer.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace pizza {

// Reads a whole file; throws InputError naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

// Writes `contents` to `path` atomically: a temp file in the same directory, fsync'd, then
// renamed over the target, so readers never see a half-written file.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Read-only memory map of a whole file (RAII). Empty files map to an empty view.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
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
