// JsonWriter never writes a number that is not JSON: NaN and infinity are a caller's bug unless
// it asks for null explicitly.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "util/json_writer.h"

using Catch::Matchers::Contains;

TEST_CASE("JsonWriter refuses NaN and infinity naming the key and writes nothing", "[json]") {
  // It used to write NaN as null and infinity as 1e999, which strict parsers reject and others
  // read as a real value.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (double bad : {std::nan(""), kInf, -kInf}) {
    pizza::JsonWriter w;
    w.begin_object().field("ok", 1.5).key("score");
    const std::string before = w.str();
    try {
      w.value(bad);
      FAIL("no exception for " << bad);
    } catch (const std::logic_error& e) {
      CHECK_THAT(e.what(), Contains("\"score\"") && Contains(pizza::format_number_text(bad)));
    }
    CHECK(w.str() == before);
    CHECK_THROWS_AS(pizza::JsonWriter().value(static_cast<float>(bad)), std::logic_error);
    CHECK_THROWS_AS(pizza::format_number(bad), std::logic_error);
  }
  CHECK(pizza::format_number_text(std::nan("")) == "nan");
  CHECK(pizza::format_number_text(-kInf) == "-inf");
  CHECK(pizza::format_number_text(0.1) == "0.1");

  // Where a schema gives null a meaning, the caller says so.
  pizza::JsonWriter w;
  w.begin_array().number_or_null(std::nan("")).number_or_null(kInf).number_or_null(0.25).end_array();
  CHECK(w.str() == "[null,null,0.25]");
}
