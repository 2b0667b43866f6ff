#include "report/report.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "report/common.h"
#include "report/writers.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json_writer.h"

namespace pizza::report {

namespace {

constexpr std::array<std::pair<std::string_view, Format>, 5> kFormats{{{"table", Format::table},
                                                                      {"csv", Format::csv},
                                                                      {"json", Format::json},
                                                                      {"jsonl", Format::jsonl},
                                                                      {"html", Format::html}}};

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

int detect_terminal_width() {
  if (const char* cols = std::getenv("COLUMNS")) {
    int n = 0;
    auto [end, ec] = std::from_chars(cols, cols + std::strlen(cols), n);
    if (ec == std::errc() && *end == '\0' && n > 0) return n;
  }
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 100;
}

}  // namespace

Format parse_format(std::string_view name) {
  for (const auto& [n, f] : kFormats)
    if (n == name) return f;
  throw UsageError("unknown output format '" + std::string(name) +
                   "' (valid: table, csv, json, jsonl, html)");
}

std::string_view format_name(Format f) {
  for (const auto& [n, fmt] : kFormats)
    if (fmt == f) return n;
  return "table";
}

std::optional<Format> format_from_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".csv") return Format::csv;
  if (ext == ".json") return Format::json;
  if (ext == ".jsonl" || ext == ".ndjson") return Format::jsonl;
  if (ext == ".html" || ext == ".htm") return Format::html;
  if (ext == ".txt") return Format::table;
  return std::nullopt;
}

RenderOptions detect_render_options(ColorMode color) {
  RenderOptions opt;
  opt.color = color;
  opt.stdout_is_tty = ::isatty(STDOUT_FILENO) == 1;
  opt.no_color_env = env_set("NO_COLOR");
  const char* ct = std::getenv("COLORTERM");
  opt.truecolor = ct != nullptr && (std::strcmp(ct, "truecolor") == 0 || std::strcmp(ct, "24bit") == 0);
  return opt;
}

bool use_color(const RenderOptions& opt) {
  return opt.color == ColorMode::always ||
         (opt.color == ColorMode::auto_ && opt.stdout_is_tty && !opt.no_color_env);
}

std::string render(const AttributionResult& result, Format format, const RenderOptions& opt) {
  detail::validate(result);
  switch (format) {
    case Format::csv: return detail::render_csv(result);
    case Format::json: return detail::render_json(result, 2);
    case Format::jsonl: return detail::render_json(result, -1) + "\n";
    case Format::html: return detail::render_html(result);
    case Format::table: break;
  }
  RenderOptions resolved = opt;
  if (resolved.terminal_width <= 0) resolved.terminal_width = detect_terminal_width();
  return detail::render_table(result, resolved);
}

std::string render_batch(std::span<const BatchRecord> records, Format format, const RenderOptions& opt) {
  for (const BatchRecord& b : records)
    if (b.result) detail::validate(*b.result);
  switch (format) {
    case Format::csv: return detail::render_csv_batch(records);
    case Format::html: return detail::render_html_page(records);
    case Format::json:
    case Format::jsonl: throw UsageError("a batch is already JSON (Lines); render it as table, csv or html");
    case Format::table: break;
  }
  std::string out;
  for (const BatchRecord& b : records) {
    if (!out.empty()) out += '\n';
    out += "record \"" + json_escape(b.id) + "\"";
    out += b.result ? ":\n" + render(*b.result, Format::table, opt) : " failed: " + b.error + "\n";
  }
  return out;
}

void write(const AttributionResult& result, std::optional<Format> format,
           const std::string& output_path, RenderOptions opt) {
  Format f = format ? *format
                    : format_from_extension(output_path).value_or(Format::table);
  if (output_path.empty()) {
    std::string text = render(result, f, opt);
    std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::cout.flush();
    if (!std::cout) throw InputError("cannot write the report to standard output");
    return;
  }
  opt.stdout_is_tty = false;  // the file is not the terminal: `auto` colour stays off
  write_file_atomic(output_path, render(result, f, opt));
}

}  // namespace pizza::report
