#include "api/digest.h"

#include <catch2/catch.hpp>

#include <string>

using pizza::api::Sha256;
using pizza::api::sha256_hex;

// The digests come from libcrypto; the expected values from sources independent of it, so a
// change of implementation cannot change the API cache's keys unnoticed.

// FIPS 180-2 appendix B (and the NIST example values) for SHA-256.
TEST_CASE("sha256: FIPS 180 test vectors", "[api]") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around SHA-256's padding boundaries (55/56 bytes: the length field fits or spills
// into a second block; 64: exactly one block). Expected values from coreutils `sha256sum`.
TEST_CASE("sha256: padding boundaries match sha256sum", "[api]") {
  CHECK(sha256_hex(std::string(55, 'a')) ==
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(sha256_hex(std::string(56, 'a')) ==
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(sha256_hex(std::string(63, 'a')) ==
        "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  CHECK(sha256_hex(std::string(64, 'a')) ==
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  CHECK(sha256_hex(std::string(65, 'a')) ==
        "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
  CHECK(sha256_hex(std::string(119, 'a')) ==
        "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
}

TEST_CASE("sha256: incremental updates equal one shot", "[api]") {
  std::string data(1000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  for (size_t chunk : {1, 7, 63, 64, 65, 999}) {
    Sha256 h;
    for (size_t pos = 0; pos < data.size(); pos += chunk) h.update(std::string_view(data).substr(pos, chunk));
    CHECK(pizza::api::to_hex(h.finish()) == sha256_hex(data));
  }
}
