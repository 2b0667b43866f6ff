#include "app/batch.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <iostream>
#include <iterator>
#include <sstream>
#include <filesystem>

#include <unistd.h>

#include "app/common.h"
#include "diff/diff.h"
#include "report/report.h"
#include "util/error.h"
#include "util/file.h"

namespace pizza::app {

namespace {

// `key =` with nothing after it: CLI11 would read it as an empty string, which a number option
// then takes as 0. An empty value is an error naming its section and key; an intended empty
// string is written "".
void reject_empty_values(const std::string& text) {
  std::istringstream lines(text);
  std::string line, section;
  while (std::getline(lines, line)) {
    const auto trim = [](std::string s) {
      const size_t b = s.find_first_not_of(" \t\r");
      const size_t e = s.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      section = trim(line.substr(1, line.find(']') == std::string::npos ? std::string::npos : line.find(']') - 1));
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string value = trim(line.substr(eq + 1));
    if (value.empty() || value[0] == '#')
      throw CLI::ConfigError((section.empty() ? "" : "[" + section + "] ") + trim(line.substr(0, eq)) +
                             ": empty value (write \"\" for an empty string)");
  }
}

// TOML keys may be spelled max_new_tokens as well as max-new-tokens (CLI11 only knows the
// latter), matching the JSONL override keys.
// Sections in `skipped` (the engine's subcommands, in the front end) are left out: their
// program reads the same file and checks them.
class TomlConfig : public CLI::ConfigTOML {
 public:
  explicit TomlConfig(std::vector<std::string> skipped) : skipped_(std::move(skipped)) {}
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    const std::string text((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
    reject_empty_values(text);
    std::istringstream in(text);
    auto items = CLI::ConfigTOML::from_config(in);
    std::erase_if(items, [&](const CLI::ConfigItem& item) {
      return !item.parents.empty() && std::find(skipped_.begin(), skipped_.end(), item.parents.front()) != skipped_.end();
    });
    for (auto& item : items) std::replace(item.name.begin(), item.name.end(), '_', '-');
    return items;
  }

 private:
  std::vector<std::string> skipped_;
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

void add_config_option(CLI::App& app, std::vector<std::string> sections_read_elsewhere) {
  app.config_formatter(std::make_shared<TomlConfig>(std::move(sections_read_elsewhere)));
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

BatchJob BatchMode::read_job() const {
  BatchJob job(*this);
  job.config_.output = output_->as<std::string>();
  if (!job.config_.output.empty()) check_writable(job.config_.output);  // before the model load
  // JSON Lines, one record per line as it is done (and resumable), unless --format or the
  // --output extension asks for a report: then the records are rendered as one at the end.
  const std::string format = format_->as<std::string>();
  const std::optional<report::Format> chosen =
      !format.empty() ? std::optional(report::parse_format(format)) : report::format_from_extension(job.config_.output);
  if (chosen && *chosen != report::Format::json && *chosen != report::Format::jsonl) {
    if (resume_)
      throw UsageError("--resume needs JSON Lines output (-o FILE.jsonl); a " + std::string(report::format_name(*chosen)) +
                       " report is written whole at the end");
    job.report_ = chosen;
  }
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

std::string BatchMode::record_location(const batch::Record& record) const {
  return "--prompts " + (prompts_ == "-" ? std::string("(standard input)") : prompts_) + " line " + std::to_string(record.line) +
         " (id \"" + record.id + "\"): ";
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
  if (record.target_text) {
    set(find("target-text"), "target_text", {*record.target_text});
    record_options_.insert(find("target-text"));
  }
  for (const auto& [key, json] : record.overrides) {
    set(find(key), key, batch::json_to_cli_values(key, json));
    record_options_.insert(find(key));
  }
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
  record_options_.clear();
}

namespace {

// The JSON Lines a report-format batch collects before it renders them: a private file in the
// temporary directory, removed however the run ends.
class ScratchRecords {
 public:
  ScratchRecords() {
    std::string name = (std::filesystem::temp_directory_path() / "pizza-batch-XXXXXX").string();
    const int fd = ::mkstemp(name.data());
    if (fd < 0) throw InputError("cannot create a temporary file in " + std::filesystem::temp_directory_path().string());
    ::close(fd);
    path_ = name;
  }
  ~ScratchRecords() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  ScratchRecords(const ScratchRecords&) = delete;
  ScratchRecords& operator=(const ScratchRecords&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

void BatchJob::run_records(const std::function<AttributionResult(const batch::Record&)>& attribute) const {
  const report::RenderOptions plain;
  std::optional<ScratchRecords> scratch;
  batch::RunConfig config = config_;
  if (report_) {
    scratch.emplace();
    config.output = scratch->path();
  }
  const batch::RunSummary s = batch::run_records(records_, config, [&](const batch::Record& record) {
    return report::render(attribute(record), report::Format::json, plain);
  });
  const std::string where = config_.output.empty() ? "standard output" : config_.output;
  if (report_) {
    // Read back as pizza render reads a saved batch, so both show a batch alike.
    const diff::ResultsFile file = diff::load_results(scratch->path());
    std::vector<report::BatchRecord> records;
    for (const diff::Record& r : file.records) records.push_back({r.id, r.error ? nullptr : &r.result, r.error.value_or("")});
    report::RenderOptions opt = report::detect_render_options(report::ColorMode::never);
    opt.stdout_is_tty = false;
    const std::string text = report::render_batch(records, *report_, opt);
    write_output(text, config_.output);
  }
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
