// Report writers: render an AttributionResult as a terminal table, CSV, JSON or a
// self-contained HTML page. Every attribution engine hands its result to write().
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "result/attribution_result.h"

namespace pizza::report {

// jsonl: the JSON document on one line (a one-record JSON Lines file, as --prompts writes).
enum class Format { table, csv, json, jsonl, html };
enum class ColorMode { auto_, always, never };

// "table" | "csv" | "json" | "jsonl" | "html"; anything else is a UsageError listing the valid
// names.
Format parse_format(std::string_view name);
// .csv .json .jsonl/.ndjson .html/.htm .txt (case-insensitive); nullopt for anything else.
std::optional<Format> format_from_extension(const std::filesystem::path& path);
std::string_view format_name(Format f);

struct RenderOptions {
  ColorMode color = ColorMode::auto_;
  bool stdout_is_tty = false;
  int terminal_width = 0;  // 0 = detect: COLUMNS env or ioctl on stdout, else 100
  bool no_color_env = false;  // NO_COLOR set (and non-empty, per no-color.org)
  size_t max_token_chars = 12;  // display columns per token label; 0 = never truncate
  bool truecolor = false;  // 24-bit colour escapes instead of the 256-colour palette
};

// Fills stdout_is_tty, no_color_env and truecolor (COLORTERM=truecolor|24bit) from the
// process environment, for callers (the CLI) that want the usual terminal behaviour.
RenderOptions detect_render_options(ColorMode color);

// Whether the table writer will emit ANSI colour for these options.
bool use_color(const RenderOptions& opt);

// Renders the result; throws InputError when the result is inconsistent (matrix shape does not
// match inputs/outputs, a span outside the text, a parameter that is not valid JSON).
std::string render(const AttributionResult& result, Format format, const RenderOptions& opt);

// One record of a saved batch (`pizza render` of a JSONL file): its id and its result, or
// the error it failed with (result null).
struct BatchRecord {
  std::string id;
  const AttributionResult* result = nullptr;
  std::string error;
};

// A batch as one report. table: each record under a `record "ID"` heading, a failed one as
// its error; csv: the single-result columns with `id` first, failed records left out (CSV has
// no place for them); html: one page with a record selector. json is a UsageError: the JSONL
// file already is that. Each result is validated as render() does.
std::string render_batch(std::span<const BatchRecord> records, Format format, const RenderOptions& opt);

// Writes to stdout (output_path empty) or to the file atomically (util/file.h
// write_file_atomic). Format: `format` if given, else from the file extension, else table.
// When writing to a file, `auto` colour is off (the file is not the terminal).
void write(const AttributionResult& result, std::optional<Format> format,
           const std::string& output_path, RenderOptions opt);

inline constexpr int kJsonSchemaVersion = 1;

}  // namespace pizza::report
