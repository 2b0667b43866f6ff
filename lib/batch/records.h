// Batch input: the prompt files of `--prompts FILE` parsed into records, before any model runs.
//
//   .txt    one prompt per line; blank (or whitespace-only) lines are skipped; id = line number.
//   .jsonl  one JSON object per line: {"id", "prompt", optional "target_text", and option
//           overrides such as "max_new_tokens": 8 or "method": "integrated-gradients"}.
// Any other name (and "-", standard input) is JSONL when its first non-blank byte is '{', else
// text. Structural problems (invalid JSON, a missing prompt, duplicate ids) are InputErrors that
// name the file and line, so a broken file fails before the slow model load; override keys are
// only checked by the subcommand that applies them, and a bad one fails its record alone.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pizza::batch {

struct Record {
  size_t index = 0;  // 0-based position among the file's records (blank lines not counted)
  size_t line = 0;   // 1-based line in the file, for messages
  std::string id;
  std::string prompt;
  std::optional<std::string> target_text;
  // Every other key of a JSONL record, in file order: key -> compact JSON value.
  std::vector<std::pair<std::string, std::string>> overrides;
};

enum class PromptFormat { text, jsonl };

// By extension (.txt; .jsonl/.ndjson), else by content (see above).
PromptFormat detect_prompt_format(const std::filesystem::path& path, std::string_view content);

// `source` names the file in error messages. Throws InputError on structural problems and on
// duplicate ids.
std::vector<Record> parse_prompts(std::string_view content, PromptFormat format, std::string_view source);

// Reads and parses a prompt file; "-" reads standard input.
std::vector<Record> load_prompts(const std::string& path);

// An override's JSON value as command-line values: a string as is, a number as written
// (integers exactly, others shortest round-trip), a boolean as "true"/"false", an array as one
// value per element. Objects, null and nested arrays are InputErrors naming `key`.
std::vector<std::string> json_to_cli_values(std::string_view key, std::string_view json);

}  // namespace pizza::batch
