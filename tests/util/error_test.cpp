#include <catch2/catch.hpp>

#include <new>

#include "util/error.h"

// An allocation failure while a file is read is reported with the file's name, never as a
// bare "std::bad_alloc".
TEST_CASE("reading() names the file when an allocation fails inside") {
  CHECK(pizza::reading("a.json", [] { return 7; }) == 7);
  CHECK_THROWS_MATCHES(pizza::reading("/models/x/tokenizer.json", []() -> int { throw std::bad_alloc(); }),
                       pizza::InputError,
                       Catch::Matchers::Message("/models/x/tokenizer.json: ran out of memory while reading it (a size in it may be corrupt)"));
  // Other errors pass through unchanged.
  CHECK_THROWS_WITH(pizza::reading("a.json", []() -> int { throw pizza::InputError("a.json: bad"); }), "a.json: bad");
}
