// Internal to pizza_api: simdjson DOM accessors that return by value. Iterating
// `e.get_array().value_unsafe()` directly would range over a member of a temporary that dies
// before the loop body runs. Call these only after checking the element's type.
#pragma once

#include <simdjson.h>

namespace pizza::api::json {

inline simdjson::dom::object object_of(simdjson::dom::element e) {
  simdjson::dom::object o;
  if (e.get(o)) return {};  // not an object: empty handle (callers check first)
  return o;
}

inline simdjson::dom::array array_of(simdjson::dom::element e) {
  simdjson::dom::array a;
  if (e.get(a)) return {};
  return a;
}

}  // namespace pizza::api::json
