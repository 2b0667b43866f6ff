// The local perturbation backend against independent brute force on stories260K: one
// unbatched, uncached Transformer::forward per perturbed prompt, written directly here.
#include "support/torch_catch.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "attribution/gradient.h"
#include "engine/local_backend.h"
#include "engine/local_perturbation.h"
#include "support/paths.h"
#include "util/error.h"

using namespace pizza;
using namespace pizza::perturbation;

namespace {

std::unique_ptr<LanguageModel> load_stories(const std::string& dtype = "float32") {
  return LanguageModel::load(test::shared("models/stories260K"), apply_runtime({"cpu", dtype, 2}));
}

// log p(outputs | prompt) per output token, from one full forward pass.
std::vector<double> brute_logprobs(const Transformer& model, const std::vector<int64_t>& prompt,
                                   const std::vector<int64_t>& outputs) {
  torch::NoGradGuard ng;
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), outputs.begin(), outputs.end() - 1);
  auto logits = model.forward(model.embed(torch::tensor(seq, torch::kLong).view({1, -1})))[0];
  auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
  std::vector<double> out;
  for (size_t i = 0; i < outputs.size(); ++i)
    out.push_back(lp[static_cast<int64_t>(prompt.size() - 1 + i)][outputs[i]].item<double>());
  return out;
}

const std::string kPrompt = "Once upon a time, there was a little girl named Lily. She liked to play outside.";

// The prompt's token ids, as the model reads them.
std::vector<int64_t> token_ids(const Encoding& enc) {
  std::vector<int64_t> ids;
  for (const auto& t : enc.tokens) ids.push_back(t.id);
  return ids;
}

// The units brute force removes in turn: the prompt's tokens grouped by `spec`, special ones left out.
std::vector<TokenUnit> removable_units(const Encoding& enc, const UnitSpec& spec) {
  std::vector<TokenUnit> units;
  for (auto& u : group_tokens(kPrompt, enc.tokens, spec))
    if (!u.special) units.push_back(u);
  return units;
}

// What the backend tests score: stories260K in float64, kPrompt's tokens and word units, and
// three output tokens to teacher-force (any three: teacher forcing scores them as given).
struct WordScoring {
  std::unique_ptr<LanguageModel> lm = load_stories("float64");
  const Tokenizer& tok = lm->tokenizer();
  std::vector<int64_t> ids;
  PromptUnits units;
  std::vector<int32_t> out_ids{371, 260, 263};
  Generation output;

  WordScoring() {
    const auto enc = tok.encode(kPrompt);
    ids = token_ids(enc);
    UnitSpec words;
    words.kind = UnitKind::word;
    units = make_units(kPrompt, enc.tokens, words);
    for (auto id : out_ids) output.tokens.push_back({tok.token_bytes(id), id, 0, {}});
  }
};

void check_occlusion(const LanguageModel& lm, const UnitSpec& unit, int64_t batch, double margin) {
  LocalPerturbationRequest req;
  req.prompt = kPrompt;
  req.max_new_tokens = 6;
  req.unit = unit;
  req.backend.max_batch = batch;
  req.engine.metrics = {Metric::prob_diff, Metric::logprob_diff};
  const auto r = run_local_perturbation(lm, req);

  // Brute force: the prompt's tokens, grouped by the same unit definition; each unit's
  // tokens removed in turn.
  const auto& tok = lm.tokenizer();
  const auto enc = tok.encode(kPrompt);
  const auto ids = token_ids(enc);
  std::vector<int64_t> outputs;
  for (const auto& o : r.outputs) outputs.push_back(o.id);
  REQUIRE(outputs.size() == 6);
  const auto units = removable_units(enc, unit);
  REQUIRE(r.matrices.size() == 2);
  REQUIRE(r.matrices[0].cols == units.size());
  const auto base = brute_logprobs(lm.model(), ids, outputs);
  for (size_t u = 0; u < units.size(); ++u) {
    std::vector<int64_t> pert;
    for (size_t t = 0; t < ids.size(); ++t)
      if (std::find(units[u].tokens.begin(), units[u].tokens.end(), t) == units[u].tokens.end()) pert.push_back(ids[t]);
    const auto lp = brute_logprobs(lm.model(), pert, outputs);
    for (size_t o = 0; o < outputs.size(); ++o) {
      INFO("unit " << u << " output " << o << " batch " << batch);
      CHECK(r.matrices[0].at(o, u) == Approx(std::exp(base[o]) - std::exp(lp[o])).margin(margin));
      CHECK(r.matrices[1].at(o, u) == Approx(base[o] - lp[o]).margin(margin));
    }
  }
}

}  // namespace

TEST_CASE("teacher-forced occlusion equals unbatched brute force") {
  UnitSpec token, word, spans;
  word.kind = UnitKind::word;
  spans.kind = UnitKind::spans;
  spans.spans = {{0, 4}, {16, 29}, {47, 52}};  // "Once", ", there was a", " Lily"
  // The engine pads and batches where brute force runs each prompt alone, so the products'
  // shapes and summation orders differ. float64 is the exact claim: log-probs of magnitude < 30
  // round at ~1e-14, so 1e-10. float32: logits of magnitude ~10 differ by ~1e-5 between shapes;
  // 1e-4 is ~50 ulps of a logit of magnitude 16, while removing the wrong unit moves these
  // differences by >> 1e-3.
  for (auto [dtype, margin] : {std::pair<const char*, double>{"float64", 1e-10}, {"float32", 1e-4}}) {
    INFO(dtype);
    auto model = load_stories(dtype);
    for (int64_t batch : {1, 3, 16}) {
      check_occlusion(*model, token, batch, margin);
      check_occlusion(*model, word, batch, margin);
      check_occlusion(*model, spans, batch, margin);
    }
  }
}

TEST_CASE("nth-nearest replacement matches a brute-force cosine ranking") {
  auto lm = load_stories();
  const auto& tok = lm->tokenizer();
  LocalEmbeddings emb(tok, lm->model().embedding_table());
  auto table = lm->model().embedding_table().to(torch::kFloat64);
  const auto V = table.size(0);
  auto is_marked = [&](int32_t id) {
    auto p = tok.piece(id);
    return p.rfind("\xE2\x96\x81", 0) == 0;
  };
  for (int32_t id : {5, 100, 300, 411}) {
    // Candidates: non-special tokens with the same "▁" status, ranked by cosine (double).
    std::vector<std::pair<double, int32_t>> ranked;
    auto q = table[id] / table[id].norm();
    for (int32_t j = 0; j < V; ++j) {
      if (tok.is_special(j) || is_marked(j) != is_marked(id)) continue;
      ranked.push_back({(table[j] / table[j].norm()).dot(q).item<double>(), j});
    }
    std::stable_sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
    REQUIRE(ranked.size() > 5);
    for (int64_t n : {0, 1, 2, 5, -1, -3}) {
      const auto want = n >= 0 ? ranked[static_cast<size_t>(n)] : ranked[ranked.size() - static_cast<size_t>(-n)];
      const auto got = emb.nth_nearest(id, n);
      INFO("token " << id << " n " << n);
      // Same token, or (only in an exact float tie) one with the same similarity.
      const double got_sim = (table[got] / table[got].norm()).dot(q).item<double>();
      // LocalEmbeddings ranks in float32: a 64-term cosine of unit vectors rounds by <= 64u =
      // 3.8e-6 (u = 6e-8), so a near-tie may go either way within that; 1e-5 covers it on any
      // kernel, while the wrong rank differs by ~1e-3 or more.
      CHECK(got_sim == Approx(want.first).margin(1e-5));
      CHECK(is_marked(got) == is_marked(id));
    }
    CHECK_THROWS_AS(emb.nth_nearest(id, static_cast<int64_t>(ranked.size())), InputError);
  }
}

TEST_CASE("free-running occlusion and hierarchical run end to end") {
  auto lm = load_stories();
  LocalPerturbationRequest req;
  req.prompt = kPrompt;
  req.max_new_tokens = 4;
  req.unit.kind = UnitKind::word;
  req.engine.scoring = Scoring::free_running;
  req.engine.metrics = {Metric::prob_diff, Metric::cosine, Metric::token_displacement};
  req.strategy = {Strategy::nth_nearest, "", 1};
  req.backend.max_batch = 5;
  auto r = run_local_perturbation(*lm, req);
  REQUIRE(r.matrices.size() == 3);
  CHECK(r.matrices[1].name == "cosine");
  CHECK(r.outputs.size() == 4);
  // Batched completions equal one-at-a-time ones.
  req.backend.max_batch = 1;
  auto r1 = run_local_perturbation(*lm, req);
  for (size_t m = 0; m < 3; ++m)
    for (size_t i = 0; i < r.matrices[m].values.size(); ++i)
      CHECK(r.matrices[m].values[i] == Approx(r1.matrices[m].values[i]).margin(1e-4));  // float32 batch vs single shapes: as in the occlusion test
  REQUIRE(r.extra_json.size() == 1);
  CHECK(r.extra_json[0].first == "experiment_log");

  req.engine.algorithm = Algorithm::hierarchical;
  req.engine.scoring = Scoring::teacher_forced;
  req.engine.metrics = {Metric::prob_diff};
  req.strategy = {};
  r = run_local_perturbation(*lm, req);
  CHECK(r.method == "hierarchical");
  CHECK(r.matrices[0].cols == 16);  // 16 words
}

TEST_CASE("bad perturbation input is a clear error from the CLI") {
  const auto model = test::shared("models/stories260K").string();
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"local", "-m", model, "-p", "Once upon a time", "-q", "-n", "3", "--method", "occlusion"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  auto r = run({"--unit-regex", "zzz"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("matches nothing") != std::string::npos);
  r = run({"--spans", "0:4,2:6"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("overlap") != std::string::npos);
  r = run({"--spans", "0:400"});
  CHECK(r.exit_code == 1);
  r = run({"--strategy", "nth-nearest", "--nth", "512"});
  CHECK(r.exit_code == 1);
  r = run({"--strategy", "nth-nearest", "--n", "512"});  // the old spelling is gone
  CHECK(r.exit_code == 2);
  r = run({"--strategy", "nth-nearest", "--nth", "512"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("beyond the vocabulary") != std::string::npos);
  r = run({"--metric", "cosine"});  // needs free-running
  CHECK(r.exit_code == 2);
  r = run({"--strategy", "sideways"});
  CHECK(r.exit_code == 2);
  r = run({"--unit", "word", "-f", "json"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("experiment_log") != std::string::npos);
}

TEST_CASE_METHOD(WordScoring, "strategy mask equals a forward pass with a hand-built attention mask") {
  // Float64: the batched, prefix-sharing backend and one uncached forward differ only by
  // summation order (~1e-15 relative), so 1e-10 on log-probabilities is an exact claim.
  Perturber masker(units, {Strategy::mask, "", 0}, &tok, nullptr, false, std::nullopt);
  LocalBackend backend(*lm, ids, {});
  const std::vector<std::vector<size_t>> sets{{0}, {3}, {2, 5, 6}, {}};
  std::vector<Prompt> prompts;
  for (const auto& s : sets) prompts.push_back(masker.perturb(s));
  const auto got = backend.score(prompts, output);

  for (size_t k = 0; k < sets.size(); ++k) {
    // By hand: every token in place, keys of the masked units' tokens switched off,
    // positions 0..n-1 as in the original.
    torch::NoGradGuard ng;
    std::vector<int64_t> seq = ids;
    for (size_t i = 0; i + 1 < out_ids.size(); ++i) seq.push_back(out_ids[i]);
    const auto n = static_cast<int64_t>(seq.size());
    auto keep = torch::ones({1, n}, torch::kBool);
    for (auto u : sets[k])
      for (auto t : units.units[u].tokens) keep[0][static_cast<int64_t>(t)] = false;
    ForwardOptions fo;
    fo.attention_mask = keep;
    fo.positions = torch::arange(0, n, torch::kLong).view({1, n});
    auto logits = lm->model().forward(lm->model().embed(torch::tensor(seq, torch::kLong).view({1, -1})), fo)[0];
    auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
    REQUIRE(got[k].size() == out_ids.size());
    for (size_t i = 0; i < out_ids.size(); ++i) {
      const double want = lp[static_cast<int64_t>(ids.size() - 1 + i)][out_ids[i]].item<double>();
      CHECK(got[k][i] == Approx(want).margin(1e-10));
    }
  }
  // Masking changes the scores (unlike nothing masked), and keeps positions: masking unit 3
  // differs from deleting it.
  CHECK(std::fabs(got[1][0] - got[3][0]) > 1e-6);
  Perturber deleter(units, {}, &tok, nullptr, false, std::nullopt);
  const auto deleted = backend.score(std::vector<Prompt>{deleter.perturb(std::vector<size_t>{3})}, output);
  CHECK(std::fabs(deleted[0][0] - got[1][0]) > 1e-9);
  // A text-only backend or generation refuses masked prompts.
  CHECK_THROWS_AS(backend.complete(std::span(prompts.data(), 1)), UsageError);
}

TEST_CASE("contrastive occlusion and ContextCite equal unbatched brute force of the target-minus-foil margin") {
  // --contrast-text: each output position's foil token is read in the output's context. Brute
  // force: one uncached forward per word removed, log-softmax written out here; float64, so
  // 1e-10 is an exact claim (as the occlusion test above).
  const auto lm = load_stories("float64");
  const auto& tok = lm->tokenizer();
  LocalPerturbationRequest req;
  req.prompt = kPrompt;
  req.target_text = " She was very happy.";
  req.contrast_text = " He was so happy.";  // 5 tokens each; 3 positions share the token
  req.unit.kind = UnitKind::word;
  req.backend.max_batch = 4;
  req.engine.metrics = {Metric::prob_diff, Metric::logprob_diff};
  const auto r = run_local_perturbation(*lm, req);
  REQUIRE(r.matrices.size() == 2);
  CHECK(r.target == "prob-diff-contrast");
  CHECK(r.matrices[1].name == "logprob-diff-contrast");

  const auto enc = tok.encode(kPrompt);
  const auto ids = token_ids(enc);
  std::vector<int64_t> outputs;
  for (const auto& o : r.outputs) outputs.push_back(o.id);
  std::vector<int64_t> foils;
  EncodeOptions eo;
  eo.add_special_tokens = false;
  for (auto id : tok.encode(*req.contrast_text, eo).ids()) foils.push_back(id);
  REQUIRE(outputs.size() == 5);
  REQUIRE(foils.size() == 5);
  // margins(prompt)[i] = {log p(y_i), log p(f_i)} after prompt + y_<i.
  auto margins = [&](const std::vector<int64_t>& prompt) {
    torch::NoGradGuard ng;
    std::vector<int64_t> seq = prompt;
    seq.insert(seq.end(), outputs.begin(), outputs.end() - 1);
    auto logits = lm->model().forward(lm->model().embed(torch::tensor(seq, torch::kLong).view({1, -1})))[0].to(torch::kFloat64);
    std::vector<std::pair<double, double>> out;
    for (size_t i = 0; i < outputs.size(); ++i) {
      auto row = logits[static_cast<int64_t>(prompt.size() - 1 + i)];
      const auto m = row.max();
      const auto log_z = ((row - m).exp().sum().log() + m).item<double>();
      out.emplace_back(row[outputs[i]].item<double>() - log_z, row[foils[i]].item<double>() - log_z);
    }
    return out;
  };
  const auto units = removable_units(enc, req.unit);
  REQUIRE(r.matrices[0].cols == units.size());
  const auto base = margins(ids);
  for (size_t u = 0; u < units.size(); ++u) {
    std::vector<int64_t> pert;
    for (size_t t = 0; t < ids.size(); ++t)
      if (std::find(units[u].tokens.begin(), units[u].tokens.end(), t) == units[u].tokens.end()) pert.push_back(ids[t]);
    const auto m = margins(pert);
    for (size_t o = 0; o < outputs.size(); ++o) {
      INFO("unit " << u << " output " << o);
      const auto [y0, f0] = base[o];
      const auto [y1, f1] = m[o];
      CHECK(r.matrices[0].at(o, u) == Approx((std::exp(y0) - std::exp(f0)) - (std::exp(y1) - std::exp(f1))).margin(1e-10));
      CHECK(r.matrices[1].at(o, u) == Approx((y0 - f0) - (y1 - f1)).margin(1e-10));
      if (outputs[o] == foils[o]) CHECK(r.matrices[1].at(o, u) == 0.0);  // a token against itself
    }
  }

  // ContextCite regresses the log-odds of token against foil, log p(y) - log p(foil): a row
  // whose foil is its own token regresses a constant 0, so its weights are all 0.
  req.engine.algorithm = Algorithm::context_cite;
  req.engine.metrics = {Metric::prob_diff};
  const auto cc = run_local_perturbation(*lm, req);
  CHECK(cc.target == "surrogate-logit-contrast");
  REQUIRE(cc.matrices.size() == 1);
  for (size_t u = 0; u < units.size(); ++u) CHECK(cc.matrices[0].at(1, u) == 0.0);  // " was" against " was"
}

TEST_CASE("contrastive targets: clear errors for a foil of another length, the output itself, free-running, pizza-legacy") {
  const auto model = test::shared("models/stories260K").string();
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"local", "-m", model, "-p", "Once upon a time", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  auto r = run({"--target-text", " She was very happy.", "--contrast-text", " He was glad."});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("--contrast-text \" He was glad.\" is") != std::string::npos);
  CHECK(r.err.find("one token per output token") != std::string::npos);
  r = run({"--target-text", " She was very happy.", "--contrast-text", " She was very happy."});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("every contrast would be 0") != std::string::npos);
  r = run({"-n", "3", "--method", "occlusion", "--scoring", "free-running", "--contrast-text", " a b"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--scoring teacher-forced") != std::string::npos);
  r = run({"--target-text", " She was", "--contrast-text", " He was", "--target", "pizza-legacy"});
  CHECK(r.exit_code == 2);
  // The matrix and header name the contrast; the parameters give the foil's tokens.
  r = run({"--target-text", " She was", "--contrast-text", " He was", "--method", "input-x-gradient", "-f", "json"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("\"target\": \"prob-contrast\"") != std::string::npos);
  CHECK(r.out.find("\"contrast_tokens\": [\" He\",\" was\"]") != std::string::npos);
}

// --max-memory shrinks the backend's batches to what fits; the scores stay those of one big batch
// (float64: only the summation order of differently shaped products changes, ~1e-15).
TEST_CASE_METHOD(WordScoring, "perturbation scores are the same under a budget that forces one prompt per forward") {
  Perturber deleter(units, {}, &tok, nullptr, false, std::nullopt);
  std::vector<Prompt> prompts;
  for (size_t u = 0; u < units.units.size(); ++u) prompts.push_back(deleter.perturb(std::vector<size_t>{u}));

  LocalBackend big(*lm, ids, {});
  const auto want = big.score(prompts, output);
  const auto& model = lm->model();
  const auto tokens = static_cast<int64_t>(ids.size() + out_ids.size());
  LocalBackendOptions bo;
  bo.max_memory = weight_bytes(model) + estimate_forward_memory(model.config(), model.dtype(), static_cast<int64_t>(ids.size()), 0) +
                  estimate_forward_memory(model.config(), model.dtype(), tokens, 3);
  LocalBackend small(*lm, ids, bo);
  const auto got = small.score(prompts, output);
  CHECK(small.rows_per_pass() == 1);
  CHECK(big.rows_per_pass() == 16);
  CHECK(small.forward_passes() > big.forward_passes());
  REQUIRE(got.size() == want.size());
  for (size_t k = 0; k < got.size(); ++k)
    for (size_t i = 0; i < got[k].size(); ++i) CHECK(got[k][i] == Approx(want[k][i]).margin(1e-12));

  // One prompt that cannot fit: InputError naming the budget, before any forward.
  bo.max_memory = weight_bytes(model) + 1;
  LocalBackend tiny(*lm, ids, bo);
  try {
    tiny.score(prompts, output);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("--max-memory allows") != std::string::npos);
  }
  CHECK(tiny.forward_passes() == 0);
}
