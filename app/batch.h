// Batch mode and config files for the subcommands: the CLI side of lib/batch.
//
// Batch mode adds --prompts FILE, --resume (with --retry-failed, --force) and --shard to a subcommand and reuses its
// --output/--format/--quiet. Each record may override the subcommand's own options by name
// ("max_new_tokens": 8 sets --max-new-tokens): the override is applied through the CLI11 option
// itself (same parsing and validators as the command line) onto a copy of the options struct, so
// any option the subcommand gains is overridable with no code here. Options that shape the whole
// run (the model, the device, the output) cannot vary per record; such a key fails its record.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "batch/records.h"
#include "batch/runner.h"
#include "report/report.h"
#include "result/attribution_result.h"
#include "util/error.h"

namespace pizza::app {

// --config FILE on the root app: TOML, a [name] section per subcommand, keys spelled as the
// long options with '-' or '_'; command-line flags win over the file; an unknown key is an
// error. Call before adding the subcommands (they inherit `fallthrough`, so --config may also
// follow the subcommand name).
// `sections_read_elsewhere`: sections this program leaves alone (the front end's for the
// engine's subcommands, which the engine checks when it runs them).
void add_config_option(CLI::App& app, std::vector<std::string> sections_read_elsewhere = {});
// Every subcommand's help names --config (an option of `pizza` that subcommands inherit, which
// CLI11 lists only in the top-level help). Call after the subcommands are added.
void document_config_option(CLI::App& app);

class BatchJob;

class BatchMode {
 public:
  // Adds the batch options to `cmd`. `prompt` (the single-prompt option) and --prompts become
  // "exactly one of". `whole_run` names (long, without dashes) further options that cannot vary
  // per record, beyond the model/runtime/output options every subcommand shares.
  static std::shared_ptr<BatchMode> add(CLI::App* cmd, CLI::Option* prompt, std::vector<std::string> whole_run = {});

  bool active() const { return !prompts_.empty(); }

  // Use add(); public only for make_shared (Key is private, so nobody else can call it).
  struct Key {
   private:
    friend class BatchMode;
    Key() = default;
  };
  BatchMode(Key, CLI::App* cmd) : cmd_(cmd) {}

  // Reads and checks the prompt file, the batch flags and every record: each record's values
  // are applied onto a copy of `bound` (the options struct the subcommand's CLI options write
  // into) and handed to `check`, which throws for a run it would refuse. Call before loading the
  // model, so that a broken file or record fails fast, naming its line.
  template <class Options>
  BatchJob prepare(Options& bound, const std::type_identity_t<std::function<void(const Options&)>>& check) const;

  // While a record's values are applied (inside prepare's `check` and run's `attribute`): the
  // options the record sets itself (its prompt aside).
  const std::set<const CLI::Option*>& record_options() const { return record_options_; }

 private:
  friend class BatchJob;
  BatchJob read_job() const;
  // Calls f with a copy of `bound` that has the record's values applied, then puts `bound` and
  // the options' results back as they were.
  template <class Options, class F>
  auto with_record(Options& bound, const batch::Record& record, F&& f) const {
    const Options base = bound;
    // The options' callbacks write into `bound`: take the record's copy, then put it back.
    struct Restore {
      Options& target;
      const Options& value;
      const BatchMode& mode;
      ~Restore() {
        target = value;
        mode.restore_results();
      }
    } restore{bound, base, *this};
    apply(record);
    const Options record_options = bound;
    return f(record_options);
  }
  // "--prompts FILE line N (id "X"): " for messages about one record.
  std::string record_location(const batch::Record& record) const;
  // Sets the record's prompt, target text and overrides through the options' callbacks (which
  // write into the bound options struct); InputError for an unknown, whole-run or bad key.
  void apply(const batch::Record& record) const;
  // Puts back the option results that apply() replaced (the struct itself is restored by copy).
  void restore_results() const;

  CLI::App* cmd_;
  CLI::Option* prompt_ = nullptr;
  CLI::Option* output_ = nullptr;
  CLI::Option* format_ = nullptr;
  CLI::Option* quiet_ = nullptr;
  std::vector<std::string> whole_run_;
  std::string prompts_, shard_;
  bool resume_ = false, retry_failed_ = false, force_ = false;
  // Storage for --output/--format/--quiet when the subcommand has none of its own.
  std::string output_path_, format_name_;
  bool quiet_flag_ = false;
  mutable std::vector<std::pair<CLI::Option*, CLI::results_t>> saved_;
  mutable std::set<const CLI::Option*> record_options_;
};

// One prepared batch: the records and where they go.
class BatchJob {
 public:
  // Runs `attribute` once per record of this shard not already in the output, in file order,
  // on a copy of `bound` (the options struct the subcommand's CLI options write into) with the
  // record's values applied; writes one JSONL line per record. Throws InputError
  // "N of M records failed" when any record failed (exit status 1), after writing all others.
  template <class Options>
  void run(Options& bound, const std::type_identity_t<std::function<AttributionResult(const Options&)>>& attribute) const {
    run_records([&](const batch::Record& record) { return mode_.with_record(bound, record, attribute); });
  }

 private:
  friend class BatchMode;
  explicit BatchJob(const BatchMode& mode) : mode_(mode) {}
  void run_records(const std::function<AttributionResult(const batch::Record&)>& attribute) const;

  const BatchMode& mode_;
  std::vector<batch::Record> records_;
  batch::RunConfig config_;
  // A report format (csv, html, table) for the whole batch; nullopt: JSON Lines as records finish.
  std::optional<report::Format> report_;
};

template <class Options>
BatchJob BatchMode::prepare(Options& bound, const std::type_identity_t<std::function<void(const Options&)>>& check) const {
  BatchJob job = read_job();
  for (const batch::Record& record : job.records_) {
    try {
      with_record(bound, record, check);
    } catch (const UsageError& e) {
      throw UsageError(record_location(record) + e.what());
    } catch (const InputError& e) {
      throw InputError(record_location(record) + e.what());
    }
  }
  return job;
}

}  // namespace pizza::app
