// A small streaming JSON writer: correct string escaping and shortest round-trip numbers
// (std::to_chars), so that values read back bit-identical. Commas are inserted automatically.
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
  JsonWriter& value(double d);
  JsonWriter& value(float f);
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
};

// Escapes a string for inclusion in JSON (without the surrounding quotes). Invalid UTF-8
// bytes are written as \u00XX escapes of the byte value so the output is always valid JSON.
std::string json_escape(std::string_view s);

// Shortest decimal representation that parses back to the same double / float.
std::string format_number(double d);
std::string format_number(float f);

}  // namespace pizza
