// Safetensors reader: memory-maps the file, parses the JSON header with simdjson and
// validates everything before any tensor is touched (header bounds, known dtypes,
// shape x dtype size == byte range, ranges inside the data section and non-overlapping).
// Tensors are exposed as zero-copy views into the mapping; converting them to the compute
// dtype is the model loader's job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/file.h"

namespace pizza::checkpoint {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

size_t dtype_size(DType dt);
std::string_view dtype_name(DType dt);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const char* data = nullptr;  // points into the mapped file; valid while the file lives
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path, Residency residency = Residency::mapped);

  const std::filesystem::path& path() const { return map_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile map_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards listed by
// model.safetensors.index.json. Owns the mappings.
class Checkpoint {
 public:
  // Opens a directory (or a single .safetensors file); `residency` says whether the shards are
  // mapped or read into memory (--no-mmap).
  static Checkpoint open(const std::filesystem::path& path, Residency residency = Residency::mapped);

  const TensorView* find(std::string_view name) const;
  // Throws InputError "missing tensor NAME in PATH" when absent.
  const TensorView& get(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> by_name_;
};

}  // namespace pizza::checkpoint
