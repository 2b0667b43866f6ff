// Hand-made safetensors files, valid and broken, shared by the checkpoint tests (library
// level) and the CLI tests (the same files through `pizza generate`). Header-only so that both
// test executables can include it without linking each other.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pizza::test {

// A safetensors file as bytes: the 8-byte little-endian header length (`claimed_len` when
// given, to lie about it), the JSON header, then the data section.
inline std::string safetensors_bytes(std::string_view header, std::string_view data,
                                     std::optional<uint64_t> claimed_len = std::nullopt) {
  uint64_t n = claimed_len.value_or(header.size());
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out += data;
  return out;
}

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("test setup: cannot write " + p.string());
}

// A broken file and a fragment the reader's error message must contain (besides the path).
struct BrokenSafetensors {
  std::string name;
  std::string bytes;
  std::string problem;
};

inline std::vector<BrokenSafetensors> broken_safetensors_files() {
  const std::string eight_bytes(8, '\0'), sixteen_bytes(16, '\0');
  // One F32 tensor of `shape` at [b, e); the data section is `data`.
  auto one = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return R"({"t":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
  };
  return {
      // Shorter than the 8-byte length prefix itself.
      {"truncated before the header length", std::string("\x10\x00\x00", 3), "shorter than the 8-byte header length"},
      // The header says 4 floats (16 bytes) but the file ends after 8 data bytes.
      {"truncated data section", safetensors_bytes(one("F32", "[4]", "[0,16]"), eight_bytes),
       "outside the data section of 8 bytes"},
      // The length prefix claims 1000 header bytes in a file of 8 + 37 bytes.
      {"header length larger than the file", safetensors_bytes(one("F32", "[2]", "[0,8]"), eight_bytes, 1000),
       "header length 1000 exceeds the file size"},
      {"overlapping offsets",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         sixteen_bytes),
       "overlap"},
      {"offsets past the data section", safetensors_bytes(one("F32", "[2]", "[8,16]"), eight_bytes),
       "data_offsets [8, 16] are outside the data section of 8 bytes"},
      {"offsets reversed", safetensors_bytes(one("F32", "[0]", "[8,0]"), eight_bytes), "outside the data section"},
      {"negative offset", safetensors_bytes(one("F32", "[2]", "[-8,0]"), eight_bytes),
       "data_offsets are not non-negative integers"},
      // 3 floats are 12 bytes, the range holds 8.
      {"shape and size mismatch", safetensors_bytes(one("F32", "[3]", "[0,8]"), eight_bytes),
       "shape x dtype size is 12 bytes but data_offsets span 8"},
      // 2^32 * 2^32 * 16 elements overflow 64 bits; must not wrap around to a small size.
      {"shape overflowing 64 bits", safetensors_bytes(one("F32", "[4294967296,4294967296,16]", "[0,8]"), eight_bytes),
       "shape is too large"},
      {"negative dimension", safetensors_bytes(one("F32", "[-2]", "[0,8]"), eight_bytes), "negative dimension"},
      {"non-JSON header", safetensors_bytes("{\"t\": not json", eight_bytes), "header is not valid JSON"},
      {"header not an object", safetensors_bytes("[1,2,3]", eight_bytes), "header is not a JSON object"},
      {"unknown dtype", safetensors_bytes(one("F33", "[2]", "[0,8]"), eight_bytes), "unknown dtype 'F33'"},
      {"missing data_offsets", safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2]}})", eight_bytes),
       "data_offsets must be [begin, end]"},
  };
}

}  // namespace pizza::test
