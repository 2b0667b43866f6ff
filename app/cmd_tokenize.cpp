// `pizza tokenize`: ids, pieces and byte spans of a prompt.
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json_writer.h"

namespace pizza::app {

namespace {

// Shows control characters and spaces visibly in the table view.
std::string visible(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out;
}

// `s` padded with spaces to `width` characters (UTF-8 code points, not bytes), so pieces such
// as "▁Once" line up.
std::string pad(const std::string& s, size_t width) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return chars >= width ? s : s + std::string(width - chars, ' ');
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  struct Options {
    ModelOptions source;
    std::string prompt, format, output;
    bool no_special = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("tokenize", "Show the token ids, pieces and byte spans of a prompt");
  // --model may be a hub repo id: only its tokenizer files are fetched.
  add_model_source_options(cmd, opts->source, false);
  cmd->add_option("--prompt,-p", opts->prompt, "Text ('-' reads standard input)")->required();
  add_format_output_options(cmd, opts->format, opts->output, "table or json (default: table)");
  add_skip_special_tokens_option(cmd, opts->no_special, "Do not add BOS/EOS");
  cmd->callback([opts] {
    if (!opts->output.empty()) check_writable(opts->output);
    if (opts->source.model.empty() && opts->source.tokenizer.empty()) throw UsageError("tokenize needs --model or --tokenizer");
    if (!opts->source.tokenizer_dir.empty() && opts->source.tokenizer.empty())
      throw UsageError("--tokenizer-dir needs --tokenizer NAME (a tiktoken encoding such as o200k_base)");
    auto tok = load_tokenizer_option(opts->source);
    auto text = read_prompt(opts->prompt);
    EncodeOptions eo;
    eo.add_special_tokens = !opts->no_special;
    auto enc = tok->encode(text, eo);
    const std::string format = opts->format.empty() ? text_format(opts->output, {"table", "json"}) : opts->format;
    if (format != "table" && format != "json")
      throw UsageError("--format: unknown value '" + format + "' for pizza tokenize (expected table or json)");
    std::string out;
    if (format == "json") {
      JsonWriter w(1);
      w.begin_object().field("tokenizer", tok->describe()).field("text", text).key("tokens").begin_array();
      for (const auto& t : enc.tokens) {
        w.begin_object().field("id", t.id).field("piece", t.text).field("text", text.substr(t.begin, t.end - t.begin));
        w.key("span").begin_array().value(t.begin).value(t.end).end_array();
        w.field("special", t.special).end_object();
      }
      w.end_array().end_object();
      out = w.str() + "\n";
    } else {
      char line[160];
      std::snprintf(line, sizeof line, "%6s  %8s  %-12s  %-20s  %s\n", "index", "id", "span", "piece", "text");
      out = line;
      for (size_t i = 0; i < enc.tokens.size(); ++i) {
        const auto& t = enc.tokens[i];
        const auto span = std::to_string(t.begin) + ":" + std::to_string(t.end);
        std::snprintf(line, sizeof line, "%6zu  %8d  %-12s  ", i, t.id, span.c_str());
        out += line + pad(visible(t.text), 20) + "  " + visible(text.substr(t.begin, t.end - t.begin)) + "\n";
      }
    }
    write_output(out, opts->output);
  });
}

}  // namespace pizza::app
