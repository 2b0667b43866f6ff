#include "engine/local_perturbation.h"

#include <cmath>

#include "engine/local.h"
#include "util/error.h"
#include "util/memory.h"
#include "util/json_writer.h"

namespace pizza {

using namespace perturbation;

perturbation::Generation forced_output(const Tokenizer& tok, const std::vector<int64_t>& prompt, const std::vector<int64_t>& ids) {
  perturbation::Generation g;
  g.text = decode_continuation(tok, prompt, ids);
  for (auto id : ids) {
    const auto i32 = static_cast<int32_t>(id);
    g.tokens.push_back({tok.is_special(i32) ? tok.piece(i32) : tok.token_bytes(i32), i32, 0, {}});
  }
  return g;
}

bool same_vocabulary(const Tokenizer& a, const Tokenizer& b) {
  if (&a == &b) return true;
  if (a.vocab_size() != b.vocab_size()) return false;
  for (int32_t i = 0; i < a.vocab_size(); ++i)
    if (a.piece(i) != b.piece(i)) return false;
  return true;
}

EmbeddingChoice choose_embeddings(const LanguageModel& source, const Tokenizer* units_tokenizer,
                                  const perturbation::StrategySpec& strategy, std::span<const perturbation::Metric> metrics,
                                  std::optional<int64_t> id_limit) {
  EmbeddingChoice c;
  bool needed = strategy.kind == Strategy::nth_nearest;
  for (auto m : metrics) needed = needed || m == Metric::cosine;
  if (!needed) return c;
  c.table = std::make_unique<LocalEmbeddings>(source.tokenizer(), source.model().embedding_table());
  c.shared_vocab = units_tokenizer && same_vocabulary(source.tokenizer(), *units_tokenizer) &&
                   (!id_limit || c.table->rows() <= *id_limit);
  const int64_t n = strategy.n;
  if (strategy.kind == Strategy::nth_nearest && (n >= c.table->rows() || -n > c.table->rows()))
    throw InputError("--nth " + std::to_string(n) + " is beyond the vocabulary (" + std::to_string(c.table->rows()) + " tokens)");
  return c;
}

AttributionResult run_local_perturbation(const LanguageModel& lm, const LocalPerturbationRequest& req) {
  const auto& tok = lm.tokenizer();
  auto eo = req.engine;
  const Scoring scoring = eo.scoring.value_or(Scoring::teacher_forced);
  eo.scoring = scoring;
  if (scoring == Scoring::free_running && (req.target_text || req.output_ids))
    throw UsageError("--target-text needs --scoring teacher-forced (free-running explains the model's own output)");

  // Teacher-forced: the output comes first (greedy or --target-text). Free-running: the engine
  // asks the backend for the original completion with its top-k log-probabilities.
  // --chat: the model runs on the rendered conversation; units and spans are the user's message.
  const auto chat = req.chat ? std::optional(render_chat_prompt(lm, req.prompt, *req.chat)) : std::nullopt;
  const std::string& prompt = chat ? chat->prompt : req.prompt;
  TokenizedRun run;
  if (scoring == Scoring::teacher_forced) {
    run = prepare_run(lm, prompt, req.target_text, req.max_new_tokens, req.output_ids, chat ? &*chat : nullptr);
  } else {
    if (req.max_new_tokens <= 0) throw UsageError("--max-new-tokens must be positive, got " + std::to_string(req.max_new_tokens));
    run.prompt = chat ? encode_chat_prompt(tok, *chat) : tok.encode(prompt);
    for (const auto& t : run.prompt.tokens) run.prompt_ids.push_back(t.id);
    if (run.prompt_ids.empty()) throw InputError("the prompt is empty and the tokenizer adds no BOS token: there is nothing to condition on");
  }

  if (req.contrast_text) {
    if (scoring != Scoring::teacher_forced)
      throw UsageError("--contrast-text needs --scoring teacher-forced (the foil's log-probabilities are read, not generated)");
    for (auto id : foil_ids(tok, run, *req.contrast_text)) eo.foil.push_back(static_cast<int32_t>(id));
  }

  auto units = make_units(prompt, run.prompt.tokens, req.unit);
  if (chat) {
    units.prefix = chat->prefix();
    units.suffix = chat->suffix();
  }

  const auto emb = choose_embeddings(req.embeddings ? *req.embeddings : lm, &tok, req.strategy, eo.metrics,
                                     lm.config().vocab_size);
  eo.embeddings = emb.table.get();
  eo.shared_vocab = emb.shared_vocab;

  std::optional<int32_t> pad = tok.pad_id();
  if (!pad) pad = tok.unk_id();
  Perturber perturber(units, req.strategy, &tok, eo.embeddings, eo.shared_vocab, pad);

  auto bo = req.backend;
  bo.max_new_tokens = req.max_new_tokens;
  bo.max_memory = memory_budget(lm, req.max_memory);
  bo.resident_bytes = std::max(weight_bytes(lm.model()), current_rss_bytes());
  if (chat) {
    bo.parse_special = chat->parse_special;
    bo.stop_ids = chat->stop_ids;
  }
  LocalBackend backend(lm, run.prompt_ids, bo);
  std::optional<perturbation::Generation> original;
  if (scoring == Scoring::teacher_forced) original = forced_output(tok, run.prompt_ids, run.output_ids);
  auto er = run_engine(backend, perturber, eo, original);
  if (scoring == Scoring::free_running) {
    run.output_ids.clear();
    for (const auto& t : er.original.tokens) run.output_ids.push_back(t.id);
  }

  AttributionResult r;
  describe_run(lm, run, prompt, r);
  r.unit = std::string(unit_kind_name(req.unit.kind));
  r.inputs = input_units(units);
  for (size_t i = 0; i < r.outputs.size(); ++i) r.outputs[i].prob = std::exp(er.original.tokens[i].logprob);
  apply_engine_result(er, eo, r);
  r.timings.memory_budget_bytes = bo.max_memory;
  r.timings.rows_per_pass = backend.rows_per_pass();
  r.timings.estimated_peak_bytes = backend.estimated_bytes();

  r.parameters = {
      {"max_new_tokens", std::to_string(req.max_new_tokens)},
      {"target_text", req.target_text ? json_string(*req.target_text) : "null"},
      {"scoring", json_string(scoring_name(scoring))},
      {"strategy", json_string(strategy_name(req.strategy.kind))},
      {"metrics", metrics_json(eo.metrics)},
      {"max_batch", std::to_string(bo.max_batch)},
      {"model_calls", std::to_string(er.model_calls)},
      {"forward_passes", std::to_string(backend.forward_passes())},
  };
  if (req.contrast_text) {
    r.parameters.emplace_back("contrast_text", json_string(*req.contrast_text));
    r.parameters.emplace_back("contrast_tokens", foil_tokens_json(tok, std::vector<int64_t>(eo.foil.begin(), eo.foil.end())));
  }
  if (req.strategy.kind == Strategy::fixed) r.parameters.emplace_back("replacement", json_string(req.strategy.replacement));
  if (req.strategy.kind == Strategy::nth_nearest) r.parameters.emplace_back("nth", std::to_string(req.strategy.n));
  if (scoring == Scoring::free_running) {
    r.parameters.emplace_back("top_k", std::to_string(bo.top_k));
    r.parameters.emplace_back("ignore_output_location", eo.ignore_output_location ? "true" : "false");
  }
  if (eo.algorithm == Algorithm::hierarchical) {
    const auto& h = eo.hierarchical;
    auto opt = [](const auto& v) { return v ? format_number(static_cast<double>(*v)) : std::string("null"); };
    r.parameters.emplace_back("init_chunk_size", opt(h.init_chunk_size));
    r.parameters.emplace_back("stride", opt(h.stride));
    r.parameters.emplace_back("static_threshold", opt(h.static_threshold));
    r.parameters.emplace_back("max_depth", opt(h.max_depth));
  }
  for (auto& p : chat_parameters(chat ? &*chat : nullptr)) r.parameters.push_back(std::move(p));
  r.extra_json.emplace_back("experiment_log", std::move(er.experiment_log));
  return r;
}

}  // namespace pizza
