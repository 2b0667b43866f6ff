#include "app/batch.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <iostream>

#include "report/report.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza::app {

namespace {

// TOML keys may be spelled max_new_tokens as well as max-new-tokens (CLI11 only knows the
// latter), matching the JSONL override keys.
class TomlConfig : public CLI::ConfigTOML {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    auto items = CLI::ConfigTOML::from_config(input);
    for (auto& item : items) std::replace(item.name.begin(), item.name.end(), '_', '-');
    return items;
  }
};

// Options that shape the whole run: the model is loaded once and the output is one file.
const std::vector<std::string> kWholeRun = {"model", "tokenizer", "tokenizer-dir", "hf-token-file", "offline",
                                            "no-download", "threads", "device", "dtype", "no-mmap", "prompts", "resume", "retry-failed", "force",
                                            "shard", "output", "format", "color", "quiet", "config", "help"};

std::string option_key(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

CLI::Option* find_or_add(CLI::App* cmd, const std::string& name, const std::function<CLI::Option*()>& add) {
  CLI::Option* opt = cmd->get_option_no_throw(name);
  return opt ? opt : add();
}

}  // namespace

void add_config_option(CLI::App& app) {
  app.config_formatter(std::make_shared<TomlConfig>());
  app.set_config("--config", "", "Read options from a TOML file ([local], [diff], ... sections)", false);
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.fallthrough();
}

void document_config_option(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({}))
    sub->footer("Config file:\n  --config FILE               Read options from a TOML file (this command's [" + sub->get_name() +
                "] section; keys are the long option names)");
}

std::shared_ptr<BatchMode> BatchMode::add(CLI::App* cmd, CLI::Option* prompt, std::vector<std::string> whole_run) {
  auto mode = std::make_shared<BatchMode>(Key{}, cmd);
  mode->prompt_ = prompt;
  mode->whole_run_ = kWholeRun;
  mode->whole_run_.insert(mode->whole_run_.end(), whole_run.begin(), whole_run.end());
  // Batch mode reuses the subcommand's output options, or brings its own.
  auto* m = mode.get();
  m->output_ = find_or_add(cmd, "--output", [&] { return cmd->add_option("--output,-o", m->output_path_, "Write here"); });
  m->format_ = find_or_add(cmd, "--format", [&] { return cmd->add_option("--format", m->format_name_, "Output format"); });
  m->quiet_ = find_or_add(cmd, "--quiet", [&] { return cmd->add_flag("--quiet,-q", m->quiet_flag_, "No progress bar"); });

  auto* prompts = cmd->add_option("--prompts", m->prompts_,
                                  "Batch mode: a .txt (one prompt per line) or .jsonl file of prompts, '-' for stdin; "
                                  "writes JSONL, one record per prompt");
  cmd->add_flag("--resume", m->resume_, "Batch: keep the records already in --output and do the rest")
      ->needs(prompts)
      ->needs(m->output_);
  auto* resume = cmd->get_option("--resume");
  cmd->add_flag("--retry-failed", m->retry_failed_, "Batch, with --resume: run the records that failed again")->needs(resume);
  cmd->add_flag("--force", m->force_, "Batch, with --resume: append even if the output was made with other run parameters")
      ->needs(resume);
  cmd->add_option("--shard", m->shard_,
                  "Batch: process only records whose index % n == i (i/n); auto or auto/n: i (and n) from a "
                  "Slurm array or Kubernetes Indexed Job")
      ->needs(prompts);
  // Exactly one of --prompt / --prompts (either may come from a config file).
  prompt->required(false);
  auto* input = cmd->add_option_group("input", "The prompt, or a file of prompts");
  input->add_option(prompt);
  input->add_option(prompts);
  input->require_option(1);
  return mode;
}

BatchJob BatchMode::prepare() const {
  const std::string format = format_->as<std::string>();
  if (!format.empty() && format != "json" && format != "jsonl")
    throw UsageError("--prompts writes JSONL records; --format must be json or left out, got '" + format + "'");
  BatchJob job(*this);
  job.config_.output = output_->as<std::string>();
  if (!job.config_.output.empty()) check_writable(job.config_.output);  // before the model load
  job.config_.resume = resume_;
  if (!shard_.empty()) {
    const batch::EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
      const char* v = std::getenv(std::string(name).c_str());
      return v ? std::optional<std::string>(v) : std::nullopt;
    };
    job.config_.shard = batch::parse_shard(shard_, env);
  }
  job.config_.force = force_;
  job.config_.retry_failed = retry_failed_;
  job.config_.progress = !quiet_->as<bool>();
  job.records_ = batch::load_prompts(prompts_);
  return job;
}

void BatchMode::apply(const batch::Record& record) const {
  const auto set = [&](CLI::Option* opt, const std::string& key, const std::vector<std::string>& values) {
    saved_.emplace_back(opt, opt->results());
    opt->clear();
    const std::string name = option_key(key);
    for (const std::string& v : values) opt->add_result(opt->get_expected_min() == 0 ? opt->get_flag_value(name, v) : v);
    try {
      opt->run_callback();  // converts and validates exactly as on the command line
    } catch (const CLI::Error& e) {
      throw InputError("\"" + key + "\": " + e.what());
    }
  };
  const auto find = [&](const std::string& key) {
    const std::string name = option_key(key);
    CLI::Option* opt = name.empty() || name.front() == '-' ? nullptr : cmd_->get_option_no_throw("--" + name);
    if (opt == nullptr || opt == prompt_)
      throw InputError("unknown key \"" + key + "\" (not an option of pizza " + cmd_->get_name() + ")");
    if (std::find(whole_run_.begin(), whole_run_.end(), name) != whole_run_.end())
      throw InputError("\"" + key + "\" applies to the whole batch; set it on the command line or in the config file");
    return opt;
  };
  // "-" would make the subcommand read its prompt from standard input.
  if (record.prompt == "-") throw InputError("the prompt \"-\" is not allowed in batch mode");
  set(prompt_, "prompt", {record.prompt});
  if (record.target_text) set(find("target-text"), "target_text", {*record.target_text});
  for (const auto& [key, json] : record.overrides) set(find(key), key, batch::json_to_cli_values(key, json));
  // Records run quietly: the batch draws its own progress bar.
  set(quiet_, "quiet", {"true"});
}

void BatchMode::restore_results() const {
  // In reverse, so an option set twice gets its first saved results back.
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
    it->first->clear();
    for (const std::string& r : it->second) it->first->add_result(r);
  }
  saved_.clear();
}

void BatchJob::run_records(const std::function<AttributionResult(const batch::Record&)>& attribute) const {
  const report::RenderOptions plain;
  const batch::RunSummary s = batch::run_records(records_, config_, [&](const batch::Record& record) {
    return report::render(attribute(record), report::Format::json, plain);
  });
  const std::string where = config_.output.empty() ? "standard output" : config_.output;
  if (s.dropped_bytes > 0)
    std::cerr << "pizza: --resume: removed a torn last line (" << s.dropped_bytes << " bytes) from " << where << "\n";
  if (s.failed > 0)
    throw InputError(std::to_string(s.failed) + " of " + std::to_string(s.selected) + " records failed (see their \"error\" in " +
                     where + ")");
  if (config_.progress)
    std::cerr << "pizza: " << s.selected << " records in " << where << " (" << s.ok << " new, " << s.skipped
              << " already there)\n";
}

}  // namespace pizza::app
