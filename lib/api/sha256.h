// SHA-256 (FIPS 180-4), implemented here so the API cache needs no crypto library. Used only
// to name cache entries; it is not a security boundary.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pizza::api {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view data);
  // The 32-byte digest. The object must not be updated afterwards.
  std::array<uint8_t, 32> finish();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lower-case hex of a digest.
std::string to_hex(const std::array<uint8_t, 32>& digest);

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace pizza::api
