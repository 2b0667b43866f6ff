#include "api/digest.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace pizza::api {

namespace {

// `what` failed: throws with the reason OpenSSL queued (its error queue is per thread).
[[noreturn]] void fail(const char* what) {
  std::string message = std::string("SHA-256: ") + what + " failed";
  if (unsigned long code = ERR_get_error()) {
    char reason[256];
    ERR_error_string_n(code, reason, sizeof reason);
    message += std::string(": ") + reason;
  }
  ERR_clear_error();
  throw std::runtime_error(message);
}

}  // namespace

void Sha256::CtxFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) fail("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) fail("EVP_DigestInit_ex");
}

Sha256& Sha256::update(std::string_view data) {
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) fail("EVP_DigestUpdate");
  return *this;
}

std::array<uint8_t, 32> Sha256::finish() {
  std::array<uint8_t, 32> out;
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &size) != 1) fail("EVP_DigestFinal_ex");
  if (size != out.size()) throw std::runtime_error("SHA-256: digest of " + std::to_string(size) + " bytes, expected 32");
  return out;
}

std::string sha256_hex(std::string_view data) { return to_hex(Sha256().update(data).finish()); }

std::string to_hex(const std::array<uint8_t, 32>& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

}  // namespace pizza::api
