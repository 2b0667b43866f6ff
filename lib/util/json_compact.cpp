#include "util/json_compact.h"

#include "util/json_writer.h"

namespace pizza {

std::string compact_json(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::INT64: return std::to_string(int64_t(e.get_int64()));
    case simdjson::dom::element_type::UINT64: return std::to_string(uint64_t(e.get_uint64()));
    case simdjson::dom::element_type::DOUBLE: return format_number(double(e.get_double()));
    case simdjson::dom::element_type::ARRAY: {
      std::string s = "[";
      for (simdjson::dom::element v : simdjson::dom::array(e.get_array())) {
        if (s.size() > 1) s += ',';
        s += compact_json(v);
      }
      return s + "]";
    }
    case simdjson::dom::element_type::OBJECT: {
      std::string s = "{";
      for (auto [key, v] : simdjson::dom::object(e.get_object())) {
        if (s.size() > 1) s += ',';
        s += "\"" + json_escape(key) + "\":" + compact_json(v);
      }
      return s + "}";
    }
    default: return simdjson::minify(e);  // strings, booleans, null
  }
}

}  // namespace pizza
