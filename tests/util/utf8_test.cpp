// UTF-8 validation against RFC 3629's definition, with sequences written out by hand.
#include <catch2/catch.hpp>

#include "util/error.h"
#include "util/utf8.h"

using namespace pizza;

TEST_CASE("first_invalid_utf8 accepts valid text and finds the first bad byte") {
  CHECK_FALSE(first_invalid_utf8(""));
  CHECK_FALSE(first_invalid_utf8("plain ASCII"));
  CHECK_FALSE(first_invalid_utf8("caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x8D\x95"));  // é, 日, 🍕
  CHECK_FALSE(first_invalid_utf8("\xF4\x8F\xBF\xBF"));                         // U+10FFFF, the last code point
  CHECK(first_invalid_utf8("caf\xE9!") == 3u);              // Latin-1 é
  CHECK(first_invalid_utf8("ab\x80") == 2u);                // stray continuation byte
  CHECK(first_invalid_utf8("x\xC3") == 1u);                 // truncated at the end
  CHECK(first_invalid_utf8("\xC3 x") == 0u);                // lead byte followed by ASCII
  CHECK(first_invalid_utf8("ok\xC0\x80") == 2u);            // overlong NUL
  CHECK(first_invalid_utf8("\xE0\x80\xAF") == 0u);          // overlong '/'
  CHECK(first_invalid_utf8("a\xED\xA0\x80") == 1u);         // UTF-16 surrogate D800
  CHECK(first_invalid_utf8("\xF4\x90\x80\x80") == 0u);      // beyond U+10FFFF
  CHECK(first_invalid_utf8("\xFF") == 0u);
}

TEST_CASE("require_utf8 names what was read and the byte") {
  CHECK_NOTHROW(require_utf8("fine \xE2\x9C\x93", "--prompt"));
  CHECK_THROWS_WITH(require_utf8("caf\xE9", "--prompt"), "--prompt: invalid UTF-8 at byte 3 (0xE9)");
}

TEST_CASE("utf8_code_points counts characters") {
  CHECK(utf8_code_points("") == 0);
  CHECK(utf8_code_points("caf\xC3\xA9") == 4);
  CHECK(utf8_code_points("\xF0\x9F\x8D\x95!") == 2);
}
