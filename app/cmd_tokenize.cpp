// `pizza tokenize`: ids, pieces and byte spans of a prompt.
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
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
    std::string prompt, format = "table";
    bool no_special = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("tokenize", "Show the token ids, pieces and byte spans of a prompt");
  // --model may be a hub repo id: only its tokenizer files are fetched.
  add_model_source_options(cmd, opts->source, false);
  cmd->add_option("--prompt,-p", opts->prompt, "Text ('-' reads standard input)")->required();
  cmd->add_option("--format", opts->format, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  cmd->add_flag("--no-special-tokens", opts->no_special, "Do not add BOS/EOS");
  cmd->callback([opts] {
    if (opts->source.model.empty() && opts->source.tokenizer.empty()) throw UsageError("tokenize needs --model or --tokenizer");
    if (!opts->source.tokenizer_dir.empty() && opts->source.tokenizer.empty())
      throw UsageError("--tokenizer-dir needs --tokenizer NAME (a tiktoken encoding such as o200k_base)");
    auto tok = load_tokenizer_option(opts->source);
    auto text = read_prompt(opts->prompt);
    EncodeOptions eo;
    eo.add_special_tokens = !opts->no_special;
    auto enc = tok->encode(text, eo);
    if (opts->format == "json") {
      JsonWriter w(1);
      w.begin_object().field("tokenizer", tok->describe()).field("text", text).key("tokens").begin_array();
      for (const auto& t : enc.tokens) {
        w.begin_object().field("id", t.id).field("piece", t.text).field("text", text.substr(t.begin, t.end - t.begin));
        w.key("span").begin_array().value(t.begin).value(t.end).end_array();
        w.field("special", t.special).end_object();
      }
      w.end_array().end_object();
      std::cout << w.str() << "\n";
      return;
    }
    std::printf("%6s  %8s  %-12s  %-20s  %s\n", "index", "id", "span", "piece", "text");
    for (size_t i = 0; i < enc.tokens.size(); ++i) {
      const auto& t = enc.tokens[i];
      auto span = std::to_string(t.begin) + ":" + std::to_string(t.end);
      std::printf("%6zu  %8d  %-12s  %s  %s\n", i, t.id, span.c_str(), pad(visible(t.text), 20).c_str(),
                  visible(text.substr(t.begin, t.end - t.begin)).c_str());
    }
  });
}

}  // namespace pizza::app
