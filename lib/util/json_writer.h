// A small streaming JSON writer: correct string escaping and shortest round-trip numbers
// (std::to_chars), so that values read back bit-identical. Commas are inserted automatically.
//
// JSON has no NaN or infinity, and pizza never writes a stand-in number for them (it used to
// write +-1e999, which is not JSON for strict parsers and reads as a real value for others).
// value(double) with a non-finite value is a programming error: it throws std::logic_error
// naming the key it was for. Results cannot hold one (require_finite refuses them first);
// writers whose schema gives "not a number" a meaning call number_or_null instead.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pizza {

class JsonWriter {
 public:
  // indent < 0: compact single line; otherwise pretty-printed with that many spaces per level.
  explicit JsonWriter(int indent = -1) : indent_(indent) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  // Throws std::logic_error for NaN and +-infinity (see above).
  JsonWriter& value(double d);
  JsonWriter& value(float f);
  // `d`, or null when it is not finite: only where the schema documents null as "no number"
  // (the perturbation experiment log, pizza diff's view of older result files).
  JsonWriter& number_or_null(double d);
  JsonWriter& value(int64_t i);
  JsonWriter& value(int i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(size_t i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(bool b);
  JsonWriter& null();
  // Inserts an already-serialized JSON value verbatim.
  JsonWriter& raw(std::string_view json);

  template <typename T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  void newline();
  JsonWriter& close(char bracket);

  std::string out_;
  int indent_;
  // Per open container: whether it already has an element.
  std::vector<bool> has_elem_;
  bool after_key_ = false;
  std::string last_key_;  // names the value in the error for a non-finite number
};

// Escapes a string for inclusion in JSON (without the surrounding quotes). Invalid UTF-8
// bytes are written as \u00XX escapes of the byte value so the output is always valid JSON.
std::string json_escape(std::string_view s);
// The string as a JSON string literal, quotes included (also how messages show user text,
// whitespace and control characters visible).
std::string json_string(std::string_view s);

// Shortest decimal representation that parses back to the same double / float, as JSON.
// Throws std::logic_error for NaN and +-infinity, which have no JSON form.
std::string format_number(double d);
std::string format_number(float f);

// The same for messages and text (CSV-like) output: nan, inf and -inf for non-finite values,
// which strtod reads back. Never for JSON.
std::string format_number_text(double d);

}  // namespace pizza
