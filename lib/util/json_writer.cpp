#include "util/json_writer.h"

#include <charconv>
#include <cmath>
#include <stdexcept>

#include "util/utf8.h"

namespace pizza {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  out += json_escape(s);
  out += '"';
  return out;
}

std::string json_escape(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\b': out += "\\b"; ++i; continue;
      case '\f': out += "\\f"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
      ++i;
      continue;
    }
    size_t n = decode_utf8(s, i).len;
    if (n == 0) {  // invalid byte: keep it visible and the document valid
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

// Shortest round-trip form, adjusted where a JSON parser could misread it: large values come
// out of to_chars as long integers (-333333333333292150000) that 64-bit-integer parsers such as
// simdjson reject, and "-0" reads back as integer 0. Those get exponent / decimal form.
// `v` must be finite.
template <typename F>
static std::string shortest(F v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 64 bytes always suffice
  std::string s(buf, end);
  if (s.find_first_of(".eE") != std::string::npos) return s;
  if (v == 0) return std::signbit(v) ? "-0.0" : s;
  if (std::fabs(static_cast<double>(v)) < 9007199254740992.0) return s;  // exact integer below 2^53
  auto [end2, ec2] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  (void)ec2;
  return std::string(buf, end2);
}

namespace {

template <typename F>
std::string json_number(F v, std::string_view context) {
  if (!std::isfinite(v)) {
    throw std::logic_error("JSON writer: " + format_number_text(static_cast<double>(v)) + " has no JSON form" +
                           (context.empty() ? std::string() : " (value of \"" + std::string(context) + "\")") +
                           "; the caller must refuse it or write null");
  }
  return shortest(v);
}

}  // namespace

std::string format_number(double d) { return json_number(d, {}); }
std::string format_number(float f) { return json_number(f, {}); }

std::string format_number_text(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return shortest(d);
}

void JsonWriter::newline() {
  if (indent_ < 0) return;
  out_ += '\n';
  out_.append(has_elem_.size() * static_cast<size_t>(indent_), ' ');
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_elem_.empty()) {
    if (has_elem_.back()) out_ += ',';
    has_elem_.back() = true;
    newline();
  }
}

JsonWriter& JsonWriter::begin_object() {
  before_value();
  out_ += '{';
  has_elem_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::close(char bracket) {
  bool had = has_elem_.back();
  has_elem_.pop_back();
  if (had) newline();
  out_ += bracket;
  return *this;
}

JsonWriter& JsonWriter::end_object() { return close('}'); }

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_ += '[';
  has_elem_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::end_array() { return close(']'); }

JsonWriter& JsonWriter::key(std::string_view k) {
  before_value();
  out_ += '"';
  out_ += json_escape(k);
  out_ += indent_ < 0 ? "\":" : "\": ";
  after_key_ = true;
  last_key_ = k;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
  before_value();
  out_ += '"';
  out_ += json_escape(s);
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::value(double d) {
  std::string text = json_number(d, last_key_);  // throws before anything is written
  before_value();
  out_ += text;
  return *this;
}

JsonWriter& JsonWriter::value(float f) {
  std::string text = json_number(f, last_key_);
  before_value();
  out_ += text;
  return *this;
}

JsonWriter& JsonWriter::number_or_null(double d) { return std::isfinite(d) ? value(d) : null(); }

JsonWriter& JsonWriter::value(int64_t i) {
  before_value();
  out_ += std::to_string(i);
  return *this;
}

JsonWriter& JsonWriter::value(bool b) {
  before_value();
  out_ += b ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::null() {
  before_value();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json) {
  before_value();
  out_ += json;
  return *this;
}

}  // namespace pizza
