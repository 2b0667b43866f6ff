#include "checkpoint/safetensors.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "util/error.h"
#include "util/file.h"

namespace pizza::checkpoint {

namespace {

// A header larger than this is certainly not a real checkpoint header (real ones are < 10 MB
// even for thousands of tensors); refusing it early avoids parsing garbage.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  std::string_view name;
  DType dtype;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {"F64", DType::F64, 8},    {"F32", DType::F32, 4},         {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2},  {"I64", DType::I64, 8},         {"I32", DType::I32, 4},
    {"I16", DType::I16, 2},    {"I8", DType::I8, 1},           {"U8", DType::U8, 1},
    {"BOOL", DType::BOOL, 1},  {"F8_E4M3", DType::F8_E4M3, 1}, {"F8_E5M2", DType::F8_E5M2, 1},
};

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw InputError(path.string() + ": invalid safetensors file: " + what);
}

}  // namespace

size_t dtype_size(DType dt) {
  for (const auto& d : kDTypes)
    if (d.dtype == dt) return d.size;
  return 0;
}

std::string_view dtype_name(DType dt) {
  for (const auto& d : kDTypes)
    if (d.dtype == dt) return d.name;
  return "?";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path, Residency residency) : map_(path, residency) {
  const size_t file_size = map_.size();
  if (file_size < 8) fail(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, map_.data(), 8);  // little-endian on every platform we build for
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(file_size));
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " is implausibly large");
  const char* data_start = map_.data() + 8 + header_len;
  const size_t data_size = file_size - 8 - header_len;

  simdjson::dom::parser parser;
  simdjson::padded_string header(map_.data() + 8, header_len);
  simdjson::dom::element root;
  if (auto err = parser.parse(header).get(root); err)
    fail(path, std::string("header is not valid JSON (") + simdjson::error_message(err) + ")");
  simdjson::dom::object obj;
  if (root.get(obj)) fail(path, "header is not a JSON object");

  for (auto [key, val] : obj) {
    std::string name(key);
    if (name == "__metadata__") {
      simdjson::dom::object md;
      if (val.get(md)) fail(path, "__metadata__ is not an object");
      for (auto [mk, mv] : md) {
        std::string_view s;
        if (mv.get(s)) fail(path, "__metadata__ value for '" + std::string(mk) + "' is not a string");
        metadata_.emplace(std::string(mk), std::string(s));
      }
      continue;
    }
    auto where = "tensor '" + name + "': ";
    simdjson::dom::object t;
    if (val.get(t)) fail(path, where + "entry is not an object");
    std::string_view dtype_str;
    if (t["dtype"].get(dtype_str)) fail(path, where + "missing or non-string dtype");
    const DTypeInfo* info = nullptr;
    for (const auto& d : kDTypes)
      if (d.name == dtype_str) info = &d;
    if (!info) fail(path, where + "unknown dtype '" + std::string(dtype_str) + "'");

    TensorView view;
    view.name = name;
    view.dtype = info->dtype;
    simdjson::dom::array shape;
    if (t["shape"].get(shape)) fail(path, where + "missing or non-array shape");
    // Overflow-checked element count: a hostile shape must not wrap around to a small size.
    unsigned __int128 numel = 1;
    for (auto d : shape) {
      int64_t v = 0;
      if (d.get(v) || v < 0) fail(path, where + "shape has a non-integer or negative dimension");
      view.shape.push_back(v);
      numel *= static_cast<uint64_t>(v);
      if (numel > (static_cast<unsigned __int128>(1) << 64)) fail(path, where + "shape is too large");
    }
    simdjson::dom::array offs;
    if (t["data_offsets"].get(offs) || offs.size() != 2) fail(path, where + "data_offsets must be [begin, end]");
    uint64_t b = 0, e = 0;
    if (offs.at(0).get(b) || offs.at(1).get(e)) fail(path, where + "data_offsets are not non-negative integers");
    if (b > e || e > data_size)
      fail(path, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                     "] are outside the data section of " + std::to_string(data_size) + " bytes");
    const unsigned __int128 expected = numel * info->size;
    if (expected != e - b)
      fail(path, where + "shape x dtype size is " + std::to_string(static_cast<uint64_t>(expected)) +
                     " bytes but data_offsets span " + std::to_string(e - b));
    view.data = data_start + b;
    view.nbytes = e - b;
    tensors_.push_back(std::move(view));
  }

  // Byte ranges must not overlap (zero-sized tensors occupy nothing and may share offsets).
  std::vector<const TensorView*> sorted;
  for (const auto& t : tensors_)
    if (t.nbytes) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i - 1]->data + sorted[i - 1]->nbytes > sorted[i]->data)
      fail(path, "tensors '" + sorted[i - 1]->name + "' and '" + sorted[i]->name + "' overlap");
}

Checkpoint Checkpoint::open(const std::filesystem::path& path, Residency residency) {
  namespace fs = std::filesystem;
  Checkpoint ck;
  ck.path_ = path;
  std::vector<fs::path> shards;
  if (fs::is_regular_file(path)) {
    shards.push_back(path);
  } else if (fs::exists(path / "model.safetensors")) {
    shards.push_back(path / "model.safetensors");
  } else if (fs::exists(path / "model.safetensors.index.json")) {
    auto index_path = path / "model.safetensors.index.json";
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    const simdjson::padded_string json(read_file(index_path));
    if (parser.parse(json).get(root))
      throw InputError(index_path.string() + ": not valid JSON");
    simdjson::dom::object wm;
    if (root["weight_map"].get(wm)) throw InputError(index_path.string() + ": missing field 'weight_map'");
    std::set<std::string> files;
    for (auto [k, v] : wm) {
      std::string_view f;
      if (v.get(f)) throw InputError(index_path.string() + ": weight_map['" + std::string(k) + "'] is not a string");
      if (f.find('/') != std::string_view::npos || f == "..")
        throw InputError(index_path.string() + ": shard name '" + std::string(f) + "' must be a plain file name");
      files.emplace(f);
    }
    for (const auto& f : files) shards.push_back(path / f);
  } else {
    throw InputError(path.string() + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& s : shards) {
    ck.files_.push_back(std::make_unique<SafetensorsFile>(s, residency));
    for (const auto& t : ck.files_.back()->tensors()) {
      if (!ck.by_name_.emplace(t.name, &t).second)
        throw InputError(s.string() + ": tensor '" + t.name + "' appears in more than one shard");
    }
  }
  return ck;
}

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw InputError("missing tensor '" + std::string(name) + "' in " + path_.string());
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : by_name_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pizza::checkpoint
