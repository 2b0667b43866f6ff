#include "engine/local.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "blas/blas.h"
#include "model/generate.h"
#include "util/error.h"
#include "util/json_writer.h"
#include "util/memory.h"
#include "util/utf8.h"

namespace pizza {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string dtype_name(torch::Dtype d) {
  return d == torch::kFloat64 ? "float64" : d == torch::kBFloat16 ? "bfloat16" : "float32";
}

}  // namespace

Normalize parse_normalize(std::string_view name) {
  if (name == "none") return Normalize::none;
  if (name == "row-max") return Normalize::row_max;
  if (name == "row-sum") return Normalize::row_sum;
  throw UsageError("--normalize: unknown value '" + std::string(name) + "' (expected none, row-max or row-sum)");
}

std::vector<int64_t> continuation_ids(const Tokenizer& tok, const TokenizedRun& run, const std::string& text,
                                      std::string_view option) {
  require_utf8(text, option);
  // Tokenize the model's input and the text together so the text splits as it would in
  // context; fall back to the text alone when the input's tokens are not a prefix of the joint
  // ones.
  EncodeOptions joint_options;
  joint_options.parse_special = run.parse_special;
  auto joint = tok.encode(run.model_text + text, joint_options).ids();
  std::vector<int64_t> ids;
  const auto& prompt_ids = run.prompt_ids;
  if (joint.size() > prompt_ids.size() && std::equal(prompt_ids.begin(), prompt_ids.end(), joint.begin())) {
    ids.assign(joint.begin() + static_cast<std::ptrdiff_t>(prompt_ids.size()), joint.end());
  } else {
    EncodeOptions eo;
    eo.add_special_tokens = false;
    for (auto id : tok.encode(text, eo).ids()) ids.push_back(id);
  }
  return ids;
}

std::vector<int64_t> foil_ids(const Tokenizer& tok, const TokenizedRun& run, const std::string& contrast_text) {
  auto foil = continuation_ids(tok, run, contrast_text, "--contrast-text");
  if (foil.empty()) throw InputError("--contrast-text is empty: there is no foil token to contrast with");
  const auto n = run.output_ids.size();
  if (foil.size() != n)
    throw InputError("--contrast-text " + json_string(contrast_text) + " is " + std::to_string(foil.size()) +
                     (foil.size() == 1 ? " token" : " tokens") + " and the explained output is " + std::to_string(n) +
                     (n == 1 ? " token" : " tokens") + ": the foil needs one token per output token (set the output with --target-text, or -n " +
                     std::to_string(foil.size()) + ")");
  if (foil == run.output_ids)
    throw InputError("--contrast-text " + json_string(contrast_text) + " is the explained output itself: every contrast would be 0");
  return foil;
}

std::string foil_tokens_json(const Tokenizer& tok, const std::vector<int64_t>& foil) {
  JsonWriter w;
  w.begin_array();
  for (auto id : foil) {
    const auto i = static_cast<int32_t>(id);
    w.value(tok.is_special(i) ? tok.piece(i) : tok.token_bytes(i));
  }
  w.end_array();
  return w.take();
}

TokenizedRun prepare_run(const LanguageModel& lm, const std::string& prompt, const std::optional<std::string>& target_text,
                         int64_t max_new_tokens, const std::optional<std::vector<int64_t>>& output_ids,
                         const ChatPrompt* chat, const BeforeGeneration& before_generation) {
  TokenizedRun run;
  const auto& tok = lm.tokenizer();
  run.prompt = chat ? encode_chat_prompt(tok, *chat) : tok.encode(prompt);
  run.model_text = chat ? chat->rendered : prompt;
  run.parse_special = chat && chat->parse_special;
  for (const auto& t : run.prompt.tokens) run.prompt_ids.push_back(t.id);
  if (run.prompt_ids.empty())
    throw InputError("the prompt is empty and the tokenizer adds no BOS token: there is nothing to condition on");
  const auto t0 = std::chrono::steady_clock::now();
  if (output_ids) {
    if (output_ids->empty()) throw InputError("there is no output token to attribute");
    run.output_ids = *output_ids;
  } else if (target_text) {
    run.output_ids = continuation_ids(tok, run, *target_text, "--target-text");
    if (run.output_ids.empty()) throw InputError("--target-text is empty: there is no output token to attribute");
  } else {
    if (max_new_tokens <= 0) throw UsageError("--max-new-tokens must be positive, got " + std::to_string(max_new_tokens));
    // At most the outputs the context has room for: more is the generation's own context error,
    // and -n near the integer limit must not size the memory probe.
    const int64_t room = lm.config().max_position_embeddings - static_cast<int64_t>(run.prompt_ids.size());
    if (before_generation) before_generation(run.prompt_ids, std::clamp<int64_t>(max_new_tokens, 1, std::max<int64_t>(1, room)));
    GenerateOptions go;
    go.max_new_tokens = max_new_tokens;
    go.stop_ids = lm.stop_ids();
    if (chat) go.stop_ids.insert(go.stop_ids.end(), chat->stop_ids.begin(), chat->stop_ids.end());
    run.output_ids = greedy_generate(lm.model(), {run.prompt_ids}, go).at(0).tokens;
  }
  run.generate_ms = ms_since(t0);
  const auto total = static_cast<int64_t>(run.prompt_ids.size() + run.output_ids.size());
  if (total > lm.config().max_position_embeddings)
    throw InputError("prompt (" + std::to_string(run.prompt_ids.size()) + " tokens) + output (" +
                     std::to_string(run.output_ids.size()) + " tokens) exceeds the model's context of " +
                     std::to_string(lm.config().max_position_embeddings) + " tokens");
  return run;
}

std::vector<double> output_probabilities(const Transformer& model, const std::vector<int64_t>& prompt,
                                         const std::vector<int64_t>& outputs) {
  torch::NoGradGuard ng;
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), outputs.begin(), outputs.end() - 1);
  auto ids = torch::tensor(seq, torch::kLong).view({1, -1});
  auto logits = model.forward(model.embed(ids))[0].slice(0, static_cast<int64_t>(prompt.size()) - 1);
  auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1).to(torch::kCPU);
  std::vector<double> out;
  for (size_t t = 0; t < outputs.size(); ++t) out.push_back(std::exp(lp[static_cast<int64_t>(t)][outputs[t]].item<double>()));
  return out;
}

void describe_run(const LanguageModel& lm, const TokenizedRun& run, const std::string& prompt, AttributionResult& r) {
  const auto& tok = lm.tokenizer();
  r.tool_version = PIZZA_VERSION;
  r.model_path = lm.path().string();
  r.model_type = lm.config().model_type;
  r.engine = "local";
  r.text = prompt;
  r.output_text = decode_continuation(tok, run.prompt_ids, run.output_ids);
  r.inputs.clear();
  for (const auto& t : run.prompt.tokens) {
    InputUnit u;
    u.text = t.special ? t.text : prompt.substr(t.begin, t.end - t.begin);
    u.begin = t.begin;
    u.end = t.end;
    u.token_ids = {t.id};
    u.special = t.special;
    r.inputs.push_back(std::move(u));
  }
  r.outputs.clear();
  for (auto id : run.output_ids) {
    OutputToken o;
    o.id = static_cast<int32_t>(id);
    o.text = tok.is_special(o.id) ? tok.piece(o.id) : tok.token_bytes(o.id);
    r.outputs.push_back(std::move(o));
  }
  r.run = run_info(lm);
  r.timings.generate_ms = run.generate_ms;
}

RunInfo run_info(const LanguageModel& lm) {
  const auto& rt = lm.runtime();
  RunInfo info;
  info.device = rt.device.str();
  info.dtype = dtype_name(rt.dtype);
  info.threads = rt.threads;
  info.blas = blas::summary();
  return info;
}

void apply_units(const LanguageModel& lm, const TokenizedRun& run, const UnitSpec& unit, Aggregate how, bool skip_special,
                 Normalize normalize, AttributionResult& r) {
  const auto P = run.prompt.tokens.size();
  // Column groups: units of the prompt's tokens, then each earlier output token on its own.
  struct Group {
    InputUnit unit;
    std::vector<size_t> columns;
  };
  std::vector<Group> groups;
  for (const auto& u : group_tokens(r.text, run.prompt.tokens, unit)) {
    Group g;
    g.columns = u.tokens;
    g.unit.special = u.special;
    g.unit.begin = u.span.first;
    g.unit.end = u.span.second;
    g.unit.text = u.special ? run.prompt.tokens[u.tokens.at(0)].text : r.text.substr(u.span.first, u.span.second - u.span.first);
    for (auto c : u.tokens) g.unit.token_ids.push_back(run.prompt.tokens[c].id);
    groups.push_back(std::move(g));
  }
  const size_t total_cols = r.matrix().cols;
  for (size_t c = P; c < total_cols; ++c) {
    Group g;
    g.columns = {c};
    const auto id = static_cast<int32_t>(run.output_ids[c - P]);
    g.unit.text = lm.tokenizer().is_special(id) ? lm.tokenizer().piece(id) : lm.tokenizer().token_bytes(id);
    g.unit.token_ids = {id};
    g.unit.generated = true;
    g.unit.special = lm.tokenizer().is_special(id);
    g.unit.begin = g.unit.end = r.text.size();
    groups.push_back(std::move(g));
  }
  if (skip_special) std::erase_if(groups, [](const Group& g) { return g.unit.special; });

  for (auto& m : r.matrices) {
    ScoreMatrix out{m.name, m.rows, groups.size(), std::vector<double>(m.rows * groups.size(), 0.0)};
    std::vector<double> row(m.cols);
    for (size_t i = 0; i < m.rows; ++i) {
      for (size_t c = 0; c < m.cols; ++c) row[c] = m.at(i, c);
      double denom = 0;
      for (size_t g = 0; g < groups.size(); ++g) {
        out.at(i, g) = aggregate(row, groups[g].columns, how);
        denom = normalize == Normalize::row_max ? std::max(denom, std::fabs(out.at(i, g)))
                                                : denom + std::fabs(out.at(i, g));
      }
      if (normalize != Normalize::none && denom > 0)
        for (size_t g = 0; g < groups.size(); ++g) out.at(i, g) /= denom;
    }
    m = std::move(out);
  }
  r.inputs.clear();
  for (auto& g : groups) r.inputs.push_back(std::move(g.unit));
  r.unit = std::string(unit_kind_name(unit.kind));
}

int64_t memory_budget(const LanguageModel& lm, std::optional<int64_t> max_memory) {
  if (max_memory) return *max_memory;
  if (!lm.model().device().is_cpu()) return 0;  // activations live on the device: no host bound
  const auto available = available_memory_bytes();
  if (!available) return 0;
  const int64_t resident = std::max(weight_bytes(lm.model()), current_rss_bytes());
  return resident + static_cast<int64_t>(kDefaultMemoryFraction * static_cast<double>(*available));
}

AttributionResult run_local_gradient(const LanguageModel& lm, const LocalRequest& req) {
  const auto* method = find_gradient_method(req.method);
  if (!method) throw UsageError("--method: '" + req.method + "' is not a gradient method");
  const auto& target = find_target(req.target.empty() ? method->default_target : req.target);
  if (req.max_batch <= 0) throw UsageError("--max-batch must be positive, got " + std::to_string(req.max_batch));

  const auto chat = req.chat ? std::optional(render_chat_prompt(lm, req.prompt, *req.chat)) : std::nullopt;
  const std::string& prompt = chat ? chat->prompt : req.prompt;
  const int64_t budget = memory_budget(lm, req.max_memory);
  // What the memory check and the run share: the method, its options and the budget.
  const auto request = [&] {
    GradientRequest g;
    g.method = method;
    g.target = &target;
    g.options = req.method_options;
    g.algorithm = req.algorithm;
    g.max_batch = req.max_batch;
    g.max_memory = budget;
    g.resident_bytes = std::max(weight_bytes(lm.model()), current_rss_bytes());
    g.threads = lm.runtime().threads;
    return g;
  };
  // A row that cannot fit fails before the generation too: checked with as many outputs as it
  // may generate.
  auto check_memory = [&](const std::vector<int64_t>& prompt_ids, int64_t outputs) {
    GradientRequest probe = request();
    probe.prompt = prompt_ids;
    probe.outputs.assign(static_cast<size_t>(outputs), 0);
    check_gradient_memory(lm.model(), probe);
  };
  auto run = prepare_run(lm, prompt, req.target_text, req.max_new_tokens, req.output_ids, chat ? &*chat : nullptr, check_memory);
  AttributionResult r;
  describe_run(lm, run, prompt, r);
  r.method = method->name;
  r.target = target.name;

  GradientRequest gr = request();
  gr.prompt = run.prompt_ids;
  gr.outputs = run.output_ids;
  if (req.contrast_text) {
    gr.foils = foil_ids(lm.tokenizer(), run, *req.contrast_text);
    r.target += "-contrast";
  }
  if (auto p = lm.tokenizer().pad_id()) gr.pad_id = *p;
  else if (auto u = lm.tokenizer().unk_id()) gr.pad_id = *u;
  gr.progress = req.progress;

  const auto t0 = std::chrono::steady_clock::now();
  auto ga = attribute_gradients(lm.model(), gr);
  r.timings.attribute_ms = ms_since(t0);
  r.timings.memory_budget_bytes = gr.max_memory;
  r.timings.rows_per_pass = ga.rows_per_pass;
  r.timings.estimated_peak_bytes = ga.estimated_bytes;

  const auto probs = output_probabilities(lm.model(), run.prompt_ids, run.output_ids);
  for (size_t i = 0; i < r.outputs.size(); ++i) r.outputs[i].prob = probs[i];

  ScoreMatrix m{r.target, static_cast<size_t>(ga.scores.size(0)), static_cast<size_t>(ga.scores.size(1)), {}};
  m.values.assign(ga.scores.data_ptr<double>(), ga.scores.data_ptr<double>() + ga.scores.numel());
  r.matrices.push_back(std::move(m));
  r.row_stats.emplace_back("target_value", ga.target_values);
  if (method->uses_baseline) {
    r.row_stats.emplace_back("baseline_value", ga.baseline_values);
    r.row_stats.emplace_back("completeness_gap", ga.completeness_gap);
  }
  if (method->rules != Relevance::gradient) r.row_stats.emplace_back("conservation_gap", ga.conservation_gap);

  const auto& o = req.method_options;
  r.parameters = {
      {"max_new_tokens", std::to_string(req.max_new_tokens)},
      {"target_text", req.target_text ? json_string(*req.target_text) : "null"},
      {"algorithm", json_string(req.algorithm == GradientAlgorithm::fast ? "fast" : "reference")},
      {"max_batch", std::to_string(req.max_batch)},
      {"aggregate", json_string(req.aggregate == Aggregate::sum    ? "sum"
                                : req.aggregate == Aggregate::mean ? "mean"
                                : req.aggregate == Aggregate::max  ? "max"
                                                                   : "absmax")},
      {"skip_special_tokens", req.skip_special ? "true" : "false"},
      {"normalize", json_string(req.normalize == Normalize::none ? "none" : req.normalize == Normalize::row_max ? "row-max" : "row-sum")},
  };
  if (!gr.foils.empty()) {
    r.parameters.emplace_back("contrast_text", json_string(*req.contrast_text));
    r.parameters.emplace_back("contrast_tokens", foil_tokens_json(lm.tokenizer(), gr.foils));
  }
  if (method->name == "saliency") r.parameters.emplace_back("norm", json_string(o.norm));
  if (method->name != "saliency") r.parameters.emplace_back("abs", o.abs ? "true" : "false");
  if (method->uses_baseline) {
    r.parameters.emplace_back("ig_steps", std::to_string(o.ig_steps));
    r.parameters.emplace_back("ig_baseline", json_string(o.baseline == Baseline::zero ? "zero" : "pad"));
  }
  for (auto& p : chat_parameters(chat ? &*chat : nullptr)) r.parameters.push_back(std::move(p));
  apply_units(lm, run, req.unit, req.aggregate, req.skip_special, req.normalize, r);
  return r;
}

}  // namespace pizza
