#include "app/common.h"

#include <iostream>
#include <iterator>

#include "util/error.h"

namespace pizza::app {

void add_model_options(CLI::App* cmd, ModelOptions& opts) {
  cmd->add_option("--model,-m", opts.model, "Model directory (Hugging Face layout)")->required();
  cmd->add_option("--tokenizer", opts.tokenizer, "Tokenizer file or directory (default: the model's)");
  cmd->add_option("--threads", opts.runtime.threads, "CPU threads (default: all cores)");
  cmd->add_option("--device", opts.runtime.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", opts.runtime.dtype, "float32, float64 or bfloat16")->capture_default_str();
}

std::unique_ptr<LanguageModel> load_model(const ModelOptions& opts) {
  auto rt = apply_runtime(opts.runtime);
  std::optional<std::filesystem::path> tok;
  if (!opts.tokenizer.empty()) tok = opts.tokenizer;
  return LanguageModel::load(opts.model, rt, tok);
}

std::string read_prompt(const std::string& arg) {
  if (arg != "-") return arg;
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) throw InputError("cannot read the prompt from standard input");
  return text;
}

}  // namespace pizza::app
