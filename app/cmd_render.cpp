// `pizza render FILE`: shows a saved result (a JSON document or a JSONL batch) as a table, CSV
// or HTML page without recomputing it. The file is read by the results reader pizza diff and
// eval use, so a record read back renders as the run that wrote it did.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/common.h"
#include "diff/diff.h"
#include "report/report.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza::app {

void add_render_command(CLI::App& app) {
  struct Options {
    std::string file, format, output, color = "auto";
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("render", "Show a saved result (.json or .jsonl batch) as a table, CSV or HTML, without recomputing");
  cmd->add_option("FILE", o->file, "Result file written by --format json or by --prompts ('-' reads standard input)")->required();
  add_format_output_options(cmd, o->format, o->output, "table, csv, html, json or jsonl (default: from --output, else table)");
  cmd->add_option("--color", o->color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->callback([o] {
    const std::optional<report::Format> format = output_format(o->format, o->output);
    const diff::ResultsFile file = diff::load_results(o->file == "-" ? "/dev/stdin" : o->file);
    const bool single = file.records.size() == 1 && file.records[0].line == 0;
    if (single) {
      if (file.records[0].error) throw InputError(o->file + ": the record failed: " + *file.records[0].error);
      write_result(file.records[0].result, format, o->output, o->color);
      return;
    }
    std::vector<report::BatchRecord> records;
    for (const diff::Record& r : file.records)
      records.push_back({r.id, r.error ? nullptr : &r.result, r.error.value_or("")});
    report::RenderOptions opt = report::detect_render_options(color_mode(o->color));
    if (!o->output.empty()) opt.stdout_is_tty = false;  // `auto` colour is for the terminal only
    const report::Format chosen = format ? *format : report::format_from_extension(o->output).value_or(report::Format::table);
    const std::string text = report::render_batch(records, chosen, opt);
    write_output(text, o->output);
  });
}

}  // namespace pizza::app
