#include "batch/records.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <iterator>
#include <unordered_map>

#include "util/error.h"
#include "util/standard_input.h"
#include "util/file.h"
#include "util/utf8.h"
#include "util/json_writer.h"
#include "util/json_compact.h"

namespace pizza::batch {

namespace {

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

// Calls fn(line_number, line) for each line, without its "\n" or "\r\n".
template <class Fn>
void for_each_line(std::string_view content, Fn&& fn) {
  size_t line_no = 0;
  while (!content.empty()) {
    const size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view{} : content.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(++line_no, line);
  }
}

[[noreturn]] void fail(std::string_view source, size_t line, const std::string& what) {
  throw InputError(std::string(source) + ":" + std::to_string(line) + ": " + what);
}

std::string lower_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

Record parse_jsonl_record(simdjson::dom::parser& parser, std::string_view line, size_t line_no, std::string_view source) {
  simdjson::dom::element doc;
  if (auto err = parser.parse(line.data(), line.size()).get(doc))
    fail(source, line_no, std::string("invalid JSON (") + simdjson::error_message(err) + ")");
  simdjson::dom::object obj;
  if (doc.get(obj)) fail(source, line_no, "expected a JSON object {\"id\": ..., \"prompt\": ...}");
  Record rec;
  rec.line = line_no;
  bool have_id = false, have_prompt = false;
  std::vector<std::string_view> seen;
  for (auto field : obj) {
    const std::string_view key = field.key;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) fail(source, line_no, "duplicate key \"" + std::string(key) + "\"");
    seen.push_back(key);
    const simdjson::dom::element v = field.value;
    if (key == "id") {
      if (v.is_string()) {
        rec.id = std::string(std::string_view(v.get_string()));
      } else if (v.is_int64() || v.is_uint64()) {
        rec.id = compact_json(v);  // ids 7 and "7" are the same record
      } else {
        fail(source, line_no, "\"id\" must be a string or an integer");
      }
      if (rec.id.empty()) fail(source, line_no, "\"id\" is empty");
      have_id = true;
    } else if (key == "prompt") {
      if (!v.is_string()) fail(source, line_no, "\"prompt\" must be a string");
      rec.prompt = std::string(std::string_view(v.get_string()));
      have_prompt = true;
    } else if (key == "target_text" || key == "target-text") {
      if (!v.is_string()) fail(source, line_no, "\"target_text\" must be a string");
      rec.target_text = std::string(std::string_view(v.get_string()));
    } else {
      rec.overrides.emplace_back(std::string(key), compact_json(v));
    }
  }
  if (!have_prompt) fail(source, line_no, "missing \"prompt\"");
  if (!have_id) rec.id = std::to_string(line_no);
  return rec;
}

}  // namespace

PromptFormat detect_prompt_format(const std::filesystem::path& path, std::string_view content) {
  const std::string ext = lower_extension(path);
  if (ext == ".txt") return PromptFormat::text;
  if (ext == ".jsonl" || ext == ".ndjson") return PromptFormat::jsonl;
  const size_t first = content.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && content[first] == '{' ? PromptFormat::jsonl : PromptFormat::text;
}

std::vector<Record> parse_prompts(std::string_view content, PromptFormat format, std::string_view source) {
  std::vector<Record> records;
  simdjson::dom::parser parser;
  for_each_line(content, [&](size_t line_no, std::string_view line) {
    if (is_blank(line)) return;
    if (format == PromptFormat::text) {
      if (auto bad = first_invalid_utf8(line))
        fail(source, line_no, "invalid UTF-8 at byte " + std::to_string(*bad) + " of the line");
      Record rec;
      rec.line = line_no;
      rec.id = std::to_string(line_no);
      rec.prompt = std::string(line);
      records.push_back(std::move(rec));
    } else {
      records.push_back(parse_jsonl_record(parser, line, line_no, source));
    }
    records.back().index = records.size() - 1;
  });
  // Ids key --resume and the output: two records with one id could not be told apart.
  std::unordered_map<std::string_view, size_t> first_line;
  for (const Record& r : records) {
    auto [it, inserted] = first_line.emplace(r.id, r.line);
    if (!inserted)
      fail(source, r.line, "duplicate id \"" + json_escape(r.id) + "\" (first on line " + std::to_string(it->second) + ")");
  }
  if (records.empty()) throw InputError(std::string(source) + ": no prompts (the file is empty or blank)");
  return records;
}

std::vector<Record> load_prompts(const std::string& path) {
  if (path == "-") {
    const std::string& text = standard_input("prompts");
    return parse_prompts(text, detect_prompt_format({}, text), "<stdin>");
  }
  const std::string text = read_file(path, FileSource::stream_ok);
  return parse_prompts(text, detect_prompt_format(path, text), path);
}

std::vector<std::string> json_to_cli_values(std::string_view key, std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(json.data(), json.size()).get(e)) throw InputError("override \"" + std::string(key) + "\": invalid JSON value");
  const auto scalar = [&](simdjson::dom::element v) -> std::string {
    switch (v.type()) {
      case simdjson::dom::element_type::STRING: return std::string(std::string_view(v.get_string()));
      case simdjson::dom::element_type::BOOL: return bool(v.get_bool()) ? "true" : "false";
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE: return compact_json(v);
      default:
        throw InputError("override \"" + std::string(key) +
                         "\": expected a string, number, boolean or array of them, got " + simdjson::minify(v));
    }
  };
  std::vector<std::string> values;
  if (e.is_array()) {
    for (simdjson::dom::element v : simdjson::dom::array(e.get_array())) values.push_back(scalar(v));
  } else {
    values.push_back(scalar(e));
  }
  return values;
}

}  // namespace pizza::batch
