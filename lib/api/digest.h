// SHA-256 through OpenSSL's libcrypto (the EVP interface), the maintained implementation
// libcurl already links. The API cache names its entries with it; not a security boundary.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace pizza::api {

// An incremental SHA-256. Throws std::runtime_error (with OpenSSL's reason) if libcrypto fails.
class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view data);
  // The 32-byte digest. The object must not be updated afterwards.
  std::array<uint8_t, 32> finish();

 private:
  struct CtxFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxFree> ctx_;
};

// Lower-case hex of a digest.
std::string to_hex(const std::array<uint8_t, 32>& digest);

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace pizza::api
