// `pizza local` end to end for gradient methods: text -> tokens -> (greedy generation or
// teacher-forced target text) -> gradient attribution -> units -> AttributionResult.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "attribution/gradient.h"
#include "engine/chat.h"
#include "model/model.h"
#include "result/attribution_result.h"
#include "units/units.h"

namespace pizza {

enum class Normalize { none, row_max, row_sum };
Normalize parse_normalize(std::string_view name);

struct LocalRequest {
  std::string prompt;
  std::optional<std::string> target_text;  // teacher forcing instead of generation
  // --contrast-text: explain target(output) - target(foil), the foil tokenized after the prompt
  // (foil_ids) with one token per output token.
  std::optional<std::string> contrast_text;
  // The explained output as token ids (e.g. one output shared by several methods in `pizza
  // eval`); overrides target_text and generation.
  std::optional<std::vector<int64_t>> output_ids;
  int64_t max_new_tokens = 16;
  std::string method = "saliency";
  std::string target;  // empty: the method's default (prob; logit for the LRP methods)
  MethodOptions method_options;
  GradientAlgorithm algorithm = GradientAlgorithm::fast;
  int64_t max_batch = 16;
  // --max-memory in bytes, weights included; nullopt: default_memory_budget.
  std::optional<int64_t> max_memory;
  UnitSpec unit;
  Aggregate aggregate = Aggregate::sum;
  bool skip_special = false;
  Normalize normalize = Normalize::none;
  // --chat: the prompt is the user's message in the model's chat template (engine/chat.h).
  std::optional<ChatOptions> chat;
  std::function<void(size_t, size_t)> progress;
};

// Prompt and output token ids as the engines see them.
struct TokenizedRun {
  Encoding prompt;                 // prompt tokens with byte spans (BOS included)
  std::vector<int64_t> prompt_ids;
  std::vector<int64_t> output_ids;
  double generate_ms = 0;
  // The text the model's input was encoded from (the rendered conversation with --chat) and
  // whether it spells special tokens: continuations (--target-text, --contrast-text) are
  // tokenized after it.
  std::string model_text;
  bool parse_special = false;
};

// Tokenizes the prompt and produces the output tokens: `output_ids` when given, else from
// target_text, else greedy. With `chat` the model runs on the rendered conversation
// (encode_chat_prompt: spans refer to chat->prompt, template tokens are special), and greedy
// generation also stops at the template's end of turn.
// Called after tokenization and before generating (only when generating): the prompt's ids and
// the most tokens the generation may add. The gradient engine checks its memory budget there.
using BeforeGeneration = std::function<void(const std::vector<int64_t>& prompt_ids, int64_t max_outputs)>;
TokenizedRun prepare_run(const LanguageModel& lm, const std::string& prompt, const std::optional<std::string>& target_text,
                         int64_t max_new_tokens, const std::optional<std::vector<int64_t>>& output_ids = std::nullopt,
                         const ChatPrompt* chat = nullptr, const BeforeGeneration& before_generation = {});

// The tokens of `text` as it continues the run's input (tokenized together, so it splits as it
// would in context; alone when the input's tokens are not a prefix of the joint ones). `option`
// names the text in errors.
std::vector<int64_t> continuation_ids(const Tokenizer& tok, const TokenizedRun& run, const std::string& text,
                                      std::string_view option);

// --contrast-text's foil: its continuation ids, one per output token of `run` (InputError when
// the counts differ, the foil is empty, or it equals the output).
std::vector<int64_t> foil_ids(const Tokenizer& tok, const TokenizedRun& run, const std::string& contrast_text);
// The foil's tokens as a JSON array of their texts (for the result's parameters).
std::string foil_tokens_json(const Tokenizer& tok, const std::vector<int64_t>& foil);

// Probability of each output token at its position (one no-grad forward).
std::vector<double> output_probabilities(const Transformer& model, const std::vector<int64_t>& prompt,
                                         const std::vector<int64_t>& outputs);

// --max-memory's value, or its default: what the process holds now (its resident memory, at
// least the model's weights) plus kDefaultMemoryFraction (util/memory.h) of the memory still
// available (MemAvailable and the cgroup's headroom; 0, no bound, where neither can be read, or
// on another device than the CPU). What is resident counts against the budget, weights and
// libtorch included, so that it bounds the whole process as a user measures it (its peak RSS).
int64_t memory_budget(const LanguageModel& lm, std::optional<int64_t> max_memory);

// Where and how the model computes: device, dtype, threads, BLAS.
RunInfo run_info(const LanguageModel& lm);

// Fills the fields every local run shares: model, run info, inputs/outputs for token columns.
void describe_run(const LanguageModel& lm, const TokenizedRun& run, const std::string& prompt, AttributionResult& result);

// Groups the token columns of `result` (prompt tokens, then generated tokens) into units,
// aggregating every matrix, dropping special columns when asked, and normalising rows.
void apply_units(const LanguageModel& lm, const TokenizedRun& run, const UnitSpec& unit, Aggregate how,
                 bool skip_special, Normalize normalize, AttributionResult& result);

AttributionResult run_local_gradient(const LanguageModel& lm, const LocalRequest& request);

}  // namespace pizza
