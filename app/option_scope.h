// Which runs each option means something for. An option given for a run it does not apply to
// (on the command line, in the --config file or in a batch record) is a usage error naming both
// options: silently ignoring it lets a user believe it took effect (`--method occlusion
// --target logprob` used to run prob-diff and say so only in the header).
//
// The scopes are one table per engine (local_scopes(), api_scopes()), written once here beside
// the run shape they are judged on, and checked by the subcommand after its options (and a
// batch record's overrides) are parsed, before any model loads.
#pragma once

#include <CLI/CLI.hpp>

#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pizza::app {

// What kind of run the options describe: the facts the scopes depend on.
struct RunShape {
  std::string method;             // --method as given
  bool gradient = false;          // a gradient method (else a perturbation method)
  std::string scoring;            // perturbation: teacher-forced or free-running
  bool prob_diff = false;         // --metric includes prob-diff
  bool cosine = false;            // --metric includes cosine
  std::string strategy;           // --strategy as given (canonical name)
  bool target_text = false;       // --target-text given: the continuation is fixed
  bool custom_units = false;      // --spans or --unit-regex: they are the units
  std::string endpoint;           // pizza api: chat or completions
  // pizza eval: the --methods list as given (the run is judged once per method: an option
  // must apply to at least one) and its --metrics (deletion, topk, lds, ...).
  std::string methods_given;
  std::vector<std::string> faithfulness_metrics;
  bool remote = false;   // pizza eval --base-url: scored over a server, no local model
  bool results = false;  // pizza eval --results: the attributions (and units) come from files
};

struct OptionScope {
  std::string_view option;  // its long name, "--norm"
  // When the option means something for the run.
  bool (*applies)(const RunShape&);
  // The part of the run that excludes it ("to --method occlusion"), and what it is for
  // ("saliency").
  std::string (*excluded_by)(const RunShape&);
  std::string_view applies_to;
};

// The scopes of pizza local's options, of pizza api's and of pizza eval's.
std::span<const OptionScope> local_scopes();
std::span<const OptionScope> api_scopes();
std::span<const OptionScope> eval_scopes();

// The options of each command that apply to every run it makes (the prompt, the model, the
// output, ...): with its scopes, every option of pizza local, api and eval is placed, so that
// none can be added without saying which runs it is for (tests/cli/vocabulary_test.cpp holds
// the two lists to each command's options). Empty for other commands.
std::span<const std::string_view> every_run_options(std::string_view command);

// The options whose values are checked: all `cmd` has a value for (from any source), or, for a
// batch record, only those the record sets itself. The command line and config file are then
// defaults for a batch of different runs (-n 4 for most records, one record with a target
// text); they are checked once against the run they describe.
struct GivenOptions {
  const CLI::App& cmd;
  const std::set<const CLI::Option*>* only = nullptr;
};

// UsageError for the first given option whose scope excludes `run`: "--norm does not apply to
// --method occlusion; it is for saliency". Options the command does not have are skipped, so
// one table may serve several commands.
void check_scopes(const GivenOptions& given, std::span<const OptionScope> scopes, const RunShape& run);
// For a command that does several runs at once (pizza eval's methods): an option must apply to
// at least one of them. `runs` is not empty.
void check_scopes(const GivenOptions& given, std::span<const OptionScope> scopes, std::span<const RunShape> runs);

}  // namespace pizza::app
