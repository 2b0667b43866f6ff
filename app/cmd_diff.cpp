// `pizza diff BASE NEW`: the CI regression check on attribution output. Exit 0 when the
// results agree, 1 when they drifted, 2 when a file cannot be read or is not a result file.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "app/commands.h"
#include "app/common.h"
#include "diff/diff.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza::app {

void add_diff_command(CLI::App& app) {
  struct Options {
    std::string base;
    std::string fresh;
    diff::Options compare;
    std::vector<std::string> atol{"1e-4"}, rtol{"1e-3"};
    std::optional<double> min_spearman;
    int top_k = 3;
    int max_findings = 20;
    std::string format, output;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "diff", "Compare two result files (JSON or JSONL); exit 1 when they differ, 2 on bad input");
  cmd->add_option("BASE", opts->base, "Baseline results (.json or .jsonl)")->required();
  cmd->add_option("NEW", opts->fresh, "New results to check against the baseline")->required();
  cmd->add_option("--atol", opts->atol,
                  "Absolute score tolerance: VALUE for every matrix and/or MATRIX=VALUE for one "
                  "(comma-separated or repeated, e.g. 1e-4,prob=1e-5)")
      ->capture_default_str();
  cmd->add_option("--rtol", opts->rtol, "Relative score tolerance (times |base score|), same forms as --atol")
      ->capture_default_str();
  cmd->add_option("--top-k", opts->top_k, "Compare each row's k most important inputs as a set (0: off)")
      ->capture_default_str();
  cmd->add_option("--min-spearman", opts->min_spearman,
                  "Least Spearman rank correlation of each row's scores and of the totals, per matrix (default: not checked)");
  cmd->add_flag("--ignore-ids", opts->compare.ignore_ids, "Compare generated tokens by text only, not by token id");
  cmd->add_flag("--allow-failed", opts->compare.allow_failed, "A record that failed in both runs is not a difference");
  cmd->add_option("--max-findings", opts->max_findings, "Findings listed per record (0: all)")
      ->capture_default_str();
  add_format_output_options(cmd, opts->format, opts->output, "Report format: text or json (default: from the --output file's extension, else text)");
  cmd->callback([opts] {
    const std::string format = opts->format.empty() ? text_format(opts->output, {"text", "json"}) : opts->format;
    if (format != "text" && format != "json")
      throw UsageError("--format: unknown value '" + format + "' for pizza diff (expected text or json)");
    if (!opts->output.empty()) check_writable(opts->output);
    if (opts->top_k < 0) throw UsageError("--top-k must be >= 0, got " + std::to_string(opts->top_k));
    if (opts->max_findings < 0)
      throw UsageError("--max-findings must be >= 0, got " + std::to_string(opts->max_findings));
    opts->compare.top_k = static_cast<size_t>(opts->top_k);
    opts->compare.max_findings_per_record = static_cast<size_t>(opts->max_findings);
    opts->compare.min_spearman = opts->min_spearman;
    diff::parse_tolerances("--atol", opts->atol, opts->compare.tolerance.atol, opts->compare.atol_by_matrix);
    diff::parse_tolerances("--rtol", opts->rtol, opts->compare.tolerance.rtol, opts->compare.rtol_by_matrix);
    diff::check_options(opts->compare);

    // main() maps UsageError to exit 2 and InputError to exit 1; diff reserves 1 for drift,
    // so a file that cannot be read or understood is reported as the exit-2 kind.
    diff::ResultsFile base, fresh;
    try {
      base = diff::load_results(opts->base);
      fresh = diff::load_results(opts->fresh);
    } catch (const InputError& e) {
      throw UsageError(e.what());
    }
    const diff::Report report = diff::compare(base, fresh, opts->compare);
    write_output(format == "json" ? diff::render_json(report) : diff::render_text(report), opts->output);
    if (!report.same())
      throw InputError("results differ from the baseline (" + std::to_string(report.differences()) +
                       " differences in " + std::to_string(report.records.size()) + " records)");
  });
}

}  // namespace pizza::app
