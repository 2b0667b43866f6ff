// Torch-free tests of the perturbation engine, driven by deterministic fake backends whose
// answers follow simple formulas, so every expected value below is worked out by hand.
// Tolerances: no BLAS and no threads here, only a few double operations per value, so results
// are exact up to double rounding (~1e-16): margins of 1e-12 / 1e-15 and Approx's default
// relative epsilon (~1.2e-5) only absorb that rounding, far below any formula slip.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "perturbation/engine.h"
#include "util/error.h"

using namespace pizza;
using namespace pizza::perturbation;

namespace {

// Output: one token "x" (id 7). Its probability after a prompt is 1 minus the weights of the
// letters of "abcdefgh" missing from the prompt, so with deletion the prob-diff of a chunk is
// the sum of its units' weights.
class WeightedFake : public PerturbationBackend {
 public:
  explicit WeightedFake(std::vector<double> w) : weights(std::move(w)) {}
  std::vector<double> weights;
  std::vector<std::vector<std::string>> calls;  // prompt texts of every call

  double prob(const std::string& text) const {
    double p = 1;
    for (size_t i = 0; i < weights.size(); ++i)
      if (text.find(static_cast<char>('a' + i)) == std::string::npos) p -= weights[i];
    return p;
  }
  void record(std::span<const Prompt> prompts) {
    calls.emplace_back();
    for (const auto& p : prompts) calls.back().push_back(p.text);
  }
  std::vector<Generation> complete(std::span<const Prompt> prompts) override {
    record(prompts);
    std::vector<Generation> out;
    for (const auto& p : prompts) {
      const double lp = std::log(prob(p.text));
      out.push_back({"x", {{"x", 7, lp, {{"x", 7, lp}}}}});
    }
    return out;
  }
  bool can_score() const override { return true; }
  std::vector<std::vector<double>> score(std::span<const Prompt> prompts, const Generation& output) override {
    record(prompts);
    REQUIRE(output.tokens.size() == 1);
    std::vector<std::vector<double>> out;
    for (const auto& p : prompts) out.push_back({std::log(prob(p.text))});
    return out;
  }
  std::string describe() const override { return "fake"; }
};

UnitSpec words() {
  UnitSpec s;
  s.kind = UnitKind::word;
  return s;
}

using Chunks = std::vector<std::vector<size_t>>;

}  // namespace

TEST_CASE("initial chunks follow PIZZA's sliding windows") {
  // 8 units, chunk 4, stride 2: windows start at -1, 1, 3, 5, 7 (half a stride before 0).
  CHECK(initial_chunks(8, 4, 2) == Chunks{{0, 1, 2}, {1, 2, 3, 4}, {3, 4, 5, 6}, {5, 6, 7}, {7}});
  // stride 3 -> padding 1: starts -1, 2, 5, 8(<9): [0,2) [2,5) [5,8) [8,8)=empty.
  CHECK(initial_chunks(8, 3, 3) == Chunks{{0, 1}, {2, 3, 4}, {5, 6, 7}});
  CHECK(initial_chunks(1, 2, 1) == Chunks{{0}});
  CHECK_THROWS_AS(initial_chunks(4, 0, 1), UsageError);
}

TEST_CASE("hierarchical perturbation reproduces PIZZA step by step") {
  // Units: the 8 words "a", " b", ..., " h". Weights: unit 2 = 0.8, unit 6 = 0.4, others 0.
  // F = 8 -> init chunk max(2, 8/2) = 4, stride 4/2 = 2.
  //
  // Depth 0 chunks and scores (sum of weights), normalised by chunk size:
  //   A {0,1,2} 0.8 -> 0.8/3 = 4/15     B {1,2,3,4} 0.8 -> 0.2     C {3,4,5,6} 0.4 -> 0.1
  //   D {5,6,7} 0.4 -> 2/15             E {7}       0   -> 0
  // Unit values = mean over the chunks holding the unit:
  //   u0 4/15, u1 = u2 = (4/15 + 3/15)/2 = 7/30, u3 = u4 = 0.15, u5 = u6 = (1/10 + 2/15)/2 = 7/60,
  //   u7 = (2/15 + 0)/2 = 1/15.
  // Cumulative = those; midrange = (4/15 + 1/15)/2 = 1/6. Chunk means of the cumulative:
  //   A (4/15 + 14/30)/3 = 0.2444 >= 1/6 split -> {0}, {1,2}
  //   B (14/30 + 0.3)/4 = 0.1917 >= 1/6 split -> {1,2}, {3,4}
  //   C (0.3 + 14/60)/4 = 0.1333 no;  D (14/60 + 1/15)/3 = 0.1 no;  E size 1.
  // Depth 1: {0} 0 -> 0, {1,2} 0.8/2 = 0.4, {3,4} 0 -> 0. Cumulative: u1 = u2 = 7/30 + 0.4 = 19/30,
  //   others unchanged. Midrange = (19/30 + 1/15)/2 = 0.35: only {1,2} (mean 19/30) splits.
  // Depth 2: {1} 0, {2} 0.8. Cumulative u2 = 19/30 + 0.8 = 43/30. Only single units: stop.
  // (Unit 6 is never refined: its chunks never reach the midrange, as in PIZZA.)
  std::string text = "a b c d e f g h";
  auto units = make_units(text, {}, words());
  REQUIRE(units.units.size() == 8);
  Perturber perturber(units, {}, nullptr, nullptr, false, std::nullopt);
  WeightedFake fake({0, 0, 0.8, 0, 0, 0, 0.4, 0});
  EngineOptions opts;
  opts.algorithm = Algorithm::hierarchical;
  auto r = run_engine(fake, perturber, opts);

  CHECK(r.scoring == Scoring::teacher_forced);
  REQUIRE(r.chunks_by_depth.size() == 3);
  CHECK(r.chunks_by_depth[0] == Chunks{{0, 1, 2}, {1, 2, 3, 4}, {3, 4, 5, 6}, {5, 6, 7}, {7}});
  CHECK(r.chunks_by_depth[1] == Chunks{{0}, {1, 2}, {3, 4}});
  CHECK(r.chunks_by_depth[2] == Chunks{{1}, {2}});
  const std::vector<double> expected{4.0 / 15, 19.0 / 30, 43.0 / 30, 0.15, 0.15, 7.0 / 60, 7.0 / 60, 1.0 / 15};
  REQUIRE(r.cumulative.size() == 8);
  const auto totals = column_totals(r.matrices.at(0));
  for (size_t u = 0; u < 8; ++u) {
    CHECK(r.cumulative[u] == Approx(expected[u]).margin(1e-12));
    CHECK(totals[u] == Approx(expected[u]).margin(1e-12));
  }
  // Calls: greedy original + scored original + 5 + 3 + 2 perturbations.
  CHECK(r.model_calls == 12);
  REQUIRE(fake.calls.size() == 5);
  // Cutting the first units leaves no leading space (" d" owned it only after "c").
  CHECK(fake.calls[2] == std::vector<std::string>{"d e f g h", "a f g h", "a b c h", "a b c d e", "a b c d e f g"});
  CHECK(r.experiment_log.find("\"masked_text\":\" b |  c\"") != std::string::npos);
  CHECK(r.experiment_log.find("\"num_llm_calls\":12") != std::string::npos);
}

TEST_CASE("hierarchical honours max depth and the static threshold") {
  std::string text = "a b c d e f g h";
  auto units = make_units(text, {}, words());
  Perturber perturber(units, {}, nullptr, nullptr, false, std::nullopt);
  WeightedFake fake({0, 0, 0.8, 0, 0, 0, 0.4, 0});
  EngineOptions opts;
  opts.algorithm = Algorithm::hierarchical;
  opts.hierarchical.max_depth = 0;
  auto r = run_engine(fake, perturber, opts);
  CHECK(r.chunks_by_depth.size() == 1);
  CHECK(r.cumulative[0] == Approx(4.0 / 15));

  // Static threshold 0.3: at depth 0 C and D (score 0.4 > 0.3) also split: C -> {3,4},{5,6},
  // D -> {5},{6,7}, joining {0},{1,2},{3,4} from the midrange rule.
  opts.hierarchical.max_depth = 1;
  opts.hierarchical.static_threshold = 0.3;
  r = run_engine(fake, perturber, opts);
  REQUIRE(r.chunks_by_depth.size() == 2);
  CHECK(r.chunks_by_depth[1] == Chunks{{0}, {1, 2}, {3, 4}, {5}, {5, 6}, {6, 7}});
}

TEST_CASE("occlusion scores each unit on its own") {
  std::string text = "a b c d";
  auto units = make_units(text, {}, words());
  Perturber perturber(units, {}, nullptr, nullptr, false, std::nullopt);
  WeightedFake fake({0.1, 0, 0.5, 0.25});
  EngineOptions opts;
  opts.metrics = {Metric::prob_diff, Metric::logprob_diff};
  auto r = run_engine(fake, perturber, opts);
  REQUIRE(r.matrices.size() == 2);
  CHECK(r.matrices[0].name == "prob-diff");
  CHECK(r.matrices[0].at(0, 0) == Approx(0.1));
  CHECK(r.matrices[0].at(0, 1) == Approx(0.0).margin(1e-15));
  CHECK(r.matrices[0].at(0, 2) == Approx(0.5));
  // logprob-diff: log 1 - log(1 - w).
  CHECK(r.matrices[1].at(0, 3) == Approx(-std::log(0.75)));
  CHECK(r.model_calls == 2 + 4);
  // Teacher-forced metrics only: cosine needs a completion.
  opts.metrics = {Metric::cosine};
  CHECK_THROWS_AS(run_engine(fake, perturber, opts), UsageError);
}

namespace {
// WeightedFake plus a foil: the foil token's probability after a prompt is half the weight of
// the letters the prompt is missing, so removing unit u moves the foil up by w_u / 2 while
// the output moves down by w_u.
class ContrastFake : public WeightedFake {
 public:
  using WeightedFake::WeightedFake;
  std::vector<ContrastLogprobs> score_contrast(std::span<const Prompt> prompts, const Generation& output,
                                               std::span<const int32_t> foil) override {
    REQUIRE(foil.size() == output.tokens.size());
    std::vector<ContrastLogprobs> out;
    for (const auto& p : prompts) out.push_back({{std::log(prob(p.text))}, {std::log(0.01 + (1 - prob(p.text)) / 2)}});
    return out;
  }
};
}  // namespace

TEST_CASE("contrastive occlusion scores the change of the target-minus-foil margin") {
  std::string text = "a b c d";
  auto units = make_units(text, {}, words());
  Perturber perturber(units, {}, nullptr, nullptr, false, std::nullopt);
  ContrastFake fake({0.1, 0, 0.5, 0.25});
  EngineOptions opts;
  opts.metrics = {Metric::prob_diff, Metric::logprob_diff};
  opts.foil = {9};
  auto r = run_engine(fake, perturber, opts);
  REQUIRE(r.matrices.size() == 2);
  CHECK(r.matrices[0].name == "prob-diff-contrast");
  CHECK(r.matrices[1].name == "logprob-diff-contrast");
  // Original: p_y = 1, p_f = 0.01. Without unit u: p_y = 1 - w, p_f = 0.01 + w / 2.
  for (size_t u = 0; u < 4; ++u) {
    const double w = fake.weights[u];
    CHECK(r.matrices[0].at(0, u) == Approx((1 - 0.01) - ((1 - w) - (0.01 + w / 2))).margin(1e-12));
    CHECK(r.matrices[1].at(0, u) == Approx((0 - std::log(0.01)) - (std::log(1 - w) - std::log(0.01 + w / 2))).margin(1e-12));
  }
  // Free-running cannot read a foil; a foil of another length is refused; a backend without
  // score_contrast (WeightedFake) refuses by name.
  opts.scoring = Scoring::free_running;
  CHECK_THROWS_AS(run_engine(fake, perturber, opts), UsageError);
  opts.scoring = Scoring::teacher_forced;
  opts.foil = {9, 9};
  CHECK_THROWS_WITH(run_engine(fake, perturber, opts), Catch::Contains("one foil token per output token"));
  WeightedFake plain({0.1, 0, 0.5, 0.25});
  opts.foil = {9};
  CHECK_THROWS_WITH(run_engine(plain, perturber, opts), Catch::Contains("--contrast-text needs a backend"));
}

TEST_CASE("free-running metrics compare top logprobs") {
  // Original: "A" p=.5 then "C" p=.6. Perturbed output: position 0 top [B .7, A .2],
  // position 1 top [A .4, C .3].
  Generation orig{"AC", {{"A", 1, std::log(.5), {{"A", 1, std::log(.5)}, {"B", 2, std::log(.3)}}},
                         {"C", 3, std::log(.6), {{"C", 3, std::log(.6)}, {"D", 4, std::log(.2)}}}}};
  Generation pert{"BA", {{"B", 2, std::log(.7), {{"B", 2, std::log(.7)}, {"A", 1, std::log(.2)}}},
                         {"A", 1, std::log(.4), {{"A", 1, std::log(.4)}, {"C", 3, std::log(.3)}}}}};
  FreeRunningContext anywhere{true, nullptr, false}, here{false, nullptr, false};
  // Anywhere: A's best is .4 -> .5-.4; C's is .3 -> .6-.3.
  auto s = free_running_scores(Metric::prob_diff, orig, pert, anywhere);
  CHECK(s[0] == Approx(0.1));
  CHECK(s[1] == Approx(0.3));
  // Same position: A at 0 is .2, C at 1 is .3.
  s = free_running_scores(Metric::prob_diff, orig, pert, here);
  CHECK(s[0] == Approx(0.3));
  CHECK(s[1] == Approx(0.3));
  s = free_running_scores(Metric::logprob_diff, orig, pert, here);
  CHECK(s[0] == Approx(std::log(2.5)));
  s = free_running_scores(Metric::token_displacement, orig, pert, here);
  CHECK(s == std::vector<double>{1, 1});
  // A shorter perturbed output: C has no position -> absent (logprob -100, rank k = 2).
  pert.tokens.pop_back();
  s = free_running_scores(Metric::prob_diff, orig, pert, here);
  CHECK(s[1] == Approx(0.6 - std::exp(-100.0)));
  CHECK(free_running_scores(Metric::token_displacement, orig, pert, here)[1] == 2);
}

namespace {
// Embeddings: id 1 = (1,0), id 2 = (0,1), id 3 = (1,1); nth_nearest(id, n) = 100 * n + id.
class FakeEmbeddings : public TokenEmbeddings {
 public:
  const Tokenizer& tokenizer() const override { throw InputError("no tokenizer"); }
  int32_t nth_nearest(int32_t id, int64_t n) const override { return static_cast<int32_t>(100 * n + id); }
  std::vector<double> cosine(std::span<const int32_t> a, std::span<const int32_t> b) const override {
    auto vec = [](int32_t id) { return id == 1 ? std::pair{1.0, 0.0} : id == 2 ? std::pair{0.0, 1.0} : std::pair{1.0, 1.0}; };
    std::vector<double> out;
    for (auto x : a)
      for (auto y : b) {
        auto [x0, x1] = vec(x);
        auto [y0, y1] = vec(y);
        out.push_back((x0 * y0 + x1 * y1) / std::hypot(x0, x1) / std::hypot(y0, y1));
      }
    return out;
  }
};
}  // namespace

TEST_CASE("cosine metric: 1 - best similarity to any perturbed token") {
  FakeEmbeddings emb;
  Generation orig{"", {{"a", 1, 0, {}}, {"c", 3, 0, {}}}};
  Generation pert{"", {{"b", 2, 0, {}}, {"a", 1, 0, {}}}};
  FreeRunningContext ctx{true, &emb, true};
  auto s = free_running_scores(Metric::cosine, orig, pert, ctx);
  CHECK(s[0] == Approx(0.0).margin(1e-12));            // id 1 appears again
  CHECK(s[1] == Approx(1 - std::sqrt(0.5)));            // (1,1) vs (1,0) or (0,1)
  pert.tokens.clear();                                   // empty output: similarity 0
  CHECK(free_running_scores(Metric::cosine, orig, pert, ctx) == std::vector<double>{1, 1});
}

TEST_CASE("perturber rebuilds text and token ids") {
  // BOS (id 1, empty span), "Once" 10, " upon" 11, " a" 12, " time" 13.
  std::string text = "Once upon a time";
  std::vector<Token> toks{{1, "<s>", 0, 0, true}, {10, "Once", 0, 4}, {11, "▁upon", 4, 9}, {12, "▁a", 9, 11},
                          {13, "▁time", 11, 16}};
  auto units = make_units(text, toks, words());
  REQUIRE(units.units.size() == 4);  // BOS is never a unit
  Perturber del(units, {}, nullptr, nullptr, false, std::nullopt);
  auto p = del.perturb(std::vector<size_t>{1});
  CHECK(p.text == "Once a time");
  CHECK(p.token_ids == std::vector<int32_t>{1, 10, 12, 13});
  p = del.perturb(std::vector<size_t>{3, 0});
  // The first word's deletion leaves no leading space: " upon" owned it only after "Once".
  CHECK(p.text == "upon a");
  CHECK(p.token_ids == std::vector<int32_t>{1, 11, 12});
  CHECK(del.masked_text(std::vector<size_t>{3, 0}) == "Once |  time");

  // pad needs the backend tokenizer and a pad token.
  CHECK_THROWS_AS(Perturber(units, {Strategy::pad, "", 0}, nullptr, nullptr, false, std::nullopt), InputError);

  StrategySpec fixed{Strategy::fixed, " X", 0};
  Perturber fx(units, fixed, nullptr, nullptr, false, std::nullopt);
  p = fx.perturb(std::vector<size_t>{2});
  CHECK(p.text == "Once upon X time");
  CHECK_FALSE(p.token_ids.has_value());  // no tokenizer to encode " X"
}

TEST_CASE("deleting text never leaves whitespace the unit did not own") {
  // Regex units hold words without their spaces: cuts must not double or strand whitespace,
  // which a server tokenizing like llama.cpp's would read as extra "▁" tokens.
  UnitSpec regex;
  regex.kind = UnitKind::regex;
  regex.regex = "\\w+";
  const auto units = make_units("Once upon  a time.\nThe end", {}, regex);
  REQUIRE(units.units.size() == 6);  // Once upon a time The end
  Perturber del(units, {}, nullptr, nullptr, false, std::nullopt);
  CHECK(del.perturb(std::vector<size_t>{0}).text == "upon  a time.\nThe end");
  CHECK(del.perturb(std::vector<size_t>{1}).text == "Once a time.\nThe end");
  CHECK(del.perturb(std::vector<size_t>{1, 2}).text == "Once time.\nThe end");
  CHECK(del.perturb(std::vector<size_t>{5}).text == "Once upon  a time.\nThe");
  CHECK(del.perturb(std::vector<size_t>{4, 5}).text == "Once upon  a time.");
  CHECK(del.perturb(std::vector<size_t>{0, 1, 2, 3, 4, 5}).text == ".");
  // Whitespace the user wrote between kept units is untouched (the double space above).
  CHECK(del.perturb(std::vector<size_t>{}).text == "Once upon  a time.\nThe end");
  // Sentence units own the whitespace before them: deleting the first leaves none in front.
  UnitSpec sentences;
  sentences.kind = UnitKind::sentence;
  const auto su = make_units("One. Two. Three.", {}, sentences);
  Perturber sdel(su, {}, nullptr, nullptr, false, std::nullopt);
  CHECK(sdel.perturb(std::vector<size_t>{0}).text == "Two. Three.");
  CHECK(sdel.perturb(std::vector<size_t>{1}).text == "One. Three.");
  CHECK(sdel.perturb(std::vector<size_t>{2}).text == "One. Two.");
}

TEST_CASE("bad units and options are clear errors") {
  UnitSpec spans;
  spans.kind = UnitKind::spans;
  spans.spans = {{0, 3}, {2, 5}};
  CHECK_THROWS_AS(make_units("abcdefgh", {}, spans), InputError);
  spans.spans = {{0, 30}};
  CHECK_THROWS_AS(make_units("abcdefgh", {}, spans), InputError);
  UnitSpec re;
  re.kind = UnitKind::regex;
  re.regex = "zzz";
  CHECK_THROWS_AS(make_units("abcdefgh", {}, re), InputError);
  UnitSpec tok;
  CHECK_THROWS_AS(make_units("abc", {}, tok), UsageError);  // token units need a tokenizer
  CHECK_THROWS_AS(parse_metrics("prob-diff,bogus"), UsageError);
  CHECK(parse_metrics("cosine,prob-diff,cosine") == std::vector<Metric>{Metric::cosine, Metric::prob_diff});
  CHECK_THROWS_AS(parse_strategy("blank"), UsageError);
  CHECK_THROWS_AS(parse_scoring("sometimes"), UsageError);
}
