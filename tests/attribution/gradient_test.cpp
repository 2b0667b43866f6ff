// Gradient attribution against independent references: Hugging Face transformers' float64
// gradients on stories260K (../shared/reference/stories260K/gradients.json), every fixture's
// grad_l1, central finite differences, and the reference (PIZZA-structured) algorithm.
#include "support/torch_catch.h"

#include <simdjson.h>

#include <map>
#include <random>

#include "attribution/gradient.h"
#include "checkpoint/model_config.h"
#include "support_torch/reference.h"
#include "support/paths.h"

using namespace pizza;

using pizza::test::worst_row_relative;

namespace {

std::vector<int64_t> int_list(simdjson::dom::element e) {
  std::vector<int64_t> out;
  simdjson::dom::array arr = e.get_array().value();  // a named array: range-for over value() of a temporary dangles
  for (auto v : arr) out.push_back(v.get_int64().value());
  return out;
}

torch::Tensor matrix(simdjson::dom::element e) {
  std::vector<torch::Tensor> rows;
  simdjson::dom::array arr = e.get_array().value();
  for (auto row : arr) {
    std::vector<double> r;
    simdjson::dom::array cells = row.get_array().value();
    for (auto v : cells) r.push_back(v.get_double().value());
    rows.push_back(torch::tensor(r, torch::kFloat64));
  }
  return torch::stack(rows);
}

GradientAttribution run(const Transformer& model, const std::vector<int64_t>& prompt, const std::vector<int64_t>& outputs,
                        const std::string& method, const std::string& target, GradientAlgorithm algo = GradientAlgorithm::fast,
                        int64_t max_batch = 16, MethodOptions opts = {}, int threads = 1) {
  auto req = test::gradient_request(prompt, outputs, method, target);
  req.algorithm = algo;
  req.max_batch = max_batch;
  req.threads = threads;
  req.options = opts;
  req.pad_id = 0;
  return attribute_gradients(model, req);
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST_CASE("gradients.json: saliency for prob, logprob, pizza-legacy and input x gradient match transformers (float64)",
          "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  struct Case {
    std::string prompt;
    std::vector<int64_t> input_ids, generated_ids;
    std::map<std::string, torch::Tensor> grads;
  };
  std::vector<Case> cases;
  {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(!parser.load(test::shared("reference/stories260K/gradients.json").string()).get(doc));
    simdjson::dom::array all = doc["cases"].get_array().value();
    for (auto c : all) {
      Case k;
      k.prompt = std::string(c["prompt"].get_string().value());
      k.input_ids = int_list(c["input_ids"].value());
      k.generated_ids = int_list(c["generated_ids"].value());
      simdjson::dom::object grads = c["grad_l1"].get_object().value();
      for (auto [key, value] : grads) k.grads[std::string(key)] = matrix(value);
      cases.push_back(std::move(k));
    }
  }
  REQUIRE(cases.size() >= 2);
  for (const auto& c : cases) {
    INFO("prompt: " << c.prompt);
    const std::pair<const char*, const char*> kTargets[] = {
        {"prob", "prob"}, {"logprob", "logprob"}, {"pizza", "pizza-legacy"}};
    for (auto [key, target] : kTargets) {
      INFO("target " << target);
      auto ours = run(lm->model(), c.input_ids, c.generated_ids, "saliency", target);
      const auto& ref = c.grads.at(key);
      REQUIRE(ours.scores.sizes() == ref.sizes());
      // Both float64 (rounding ~1e-14, whatever the BLAS kernel); 1e-4 of the row max is the
      // scale of a real discrepancy's smallest effect (a wrong target or position is O(1e-1)).
      CHECK(worst_row_relative(ours.scores, ref) < 1e-4);
    }
    auto ixg = run(lm->model(), c.input_ids, c.generated_ids, "input-x-gradient", "prob");
    CHECK(worst_row_relative(ixg.scores, c.grads.at("ixg_prob")) < 1e-4);  // as above: float64 on both sides
  }
}

TEST_CASE("fixtures: grad_l1 (target prob, L1 saliency) of every supported architecture within 1e-3 of the row maximum",
          "[attribution][fixtures]") {
  const auto& supported = supported_model_types();
  size_t checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::shared("fixtures"))) {
    if (!entry.is_directory()) continue;
    auto cfg = std::filesystem::exists(entry.path() / "config.json") ? entry.path() : std::filesystem::path();
    if (cfg.empty()) continue;
    std::string type;
    try {
      type = load_model_config(entry.path()).model_type;
    } catch (const std::exception&) {
      continue;  // an architecture this build does not support
    }
    if (std::find(supported.begin(), supported.end(), type) == supported.end()) continue;
    DYNAMIC_SECTION(entry.path().filename().string()) {
      test::ReferenceTensors ref(entry.path() / "reference.safetensors");
      auto lm = LanguageModel::load_weights(entry.path(), test::cpu_runtime());
      auto ours = run(lm->model(), to_vector(ref["input_ids"]), to_vector(ref["greedy_ids"]), "saliency", "prob");
      auto expected = ref["grad_l1"];
      REQUIRE(ours.scores.sizes() == expected.sizes());
      // Two float32 implementations: the fixtures README's tolerance (its float32-vs-float64
      // gap is <= 6.7e-6 of the row max, so 1e-3 is kernel- and thread-proof).
      CHECK(worst_row_relative(ours.scores, expected) < 1e-3);
    }
    ++checked;
  }
  // The Llama family at least (llama, llama_rope3_bias, mistral, mistral_sw8, qwen2, granite).
  CHECK(checked >= 6);
}

namespace {
int64_t g_probe_dim = 0;  // hidden dimension read by the probe method below (test-only)
}

TEST_CASE("gradients equal central finite differences in float64 on stories260K", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  const auto& model = lm->model();
  const std::vector<int64_t> prompt = {1, 403, 407, 261, 378, 432, 383};
  const std::vector<int64_t> outputs = {286, 261, 376, 298};
  // A probe "method": the raw gradient at one hidden dimension.
  GradientMethod probe{"probe", "", false, input_point,
                       [](const torch::Tensor&, const torch::Tensor&, const torch::Tensor& g, const MethodOptions&) {
                         return g.select(-1, g_probe_dim);
                       }};
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), outputs.begin(), outputs.end());
  auto embeds = model.embed(torch::tensor(seq).view({1, -1}))[0];
  std::mt19937 rng(1234);
  const auto& target = find_target("prob");
  int compared = 0;
  for (int k = 0; k < 20; ++k) {
    const int64_t row = std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(outputs.size()) - 1)(rng);
    const int64_t L = static_cast<int64_t>(prompt.size()) + row;  // prefix length of this row
    const int64_t pos = std::uniform_int_distribution<int64_t>(0, L - 1)(rng);
    g_probe_dim = std::uniform_int_distribution<int64_t>(0, embeds.size(1) - 1)(rng);
    GradientRequest req;
    req.prompt = prompt;
    req.outputs = outputs;
    req.method = &probe;
    req.target = &target;
    auto analytic = attribute_gradients(model, req).scores[row][pos].item<double>();

    torch::NoGradGuard ng;
    const double h = 1e-5;
    auto f = [&](double delta) {
      auto e = embeds.slice(0, 0, L).clone();
      e[pos][g_probe_dim] += delta;
      auto logits = model.forward(e.unsqueeze(0));
      return target.fn(logits, torch::tensor({L - 1}), torch::tensor({outputs[static_cast<size_t>(row)]})).item<double>();
    };
    const double numeric = (f(h) - f(-h)) / (2 * h);
    INFO("row " << row << " pos " << pos << " dim " << g_probe_dim << ": analytic " << analytic << " numeric " << numeric);
    // Central differences in float64: truncation O(h^2) ~ 1e-10, rounding ~ 1e-16 / h ~ 1e-11;
    // 1e-5 relative (absolute below |numeric| 1e-3) is far above both and far below a wrong
    // gradient.
    CHECK(std::fabs(analytic - numeric) <= 1e-5 * std::max(std::fabs(numeric), 1e-3));
    ++compared;
  }
  CHECK(compared == 20);
}

// In float64 the two algorithms agree to rounding (~1e-14 of the row maximum): 1e-9 is the
// algorithmic claim, kernel- and thread-proof, and any real difference shows far above it. In
// float32 (the default) their matrix products run in different shapes and so round differently,
// which signed input x gradient rows (sums with cancellation) show at about 1e-5 of the row
// maximum: 1e-4 is the bound worked out in tests/cli/local_threads_test.cpp (512-term dot
// products, u = 6e-8, |terms| a few row maxima).
TEST_CASE("fast algorithm equals the reference algorithm for every method and target at several batch sizes and threads",
          "[attribution]") {
  const auto [dtype, tolerance] = GENERATE(std::pair<std::string, double>{"float64", 1e-9}, std::pair<std::string, double>{"float32", 1e-4});
  // f(x) (a probability, log-probability or logit): float64 rounding ~1e-15 relative; float32's
  // 512-term softmax sum and logits of magnitude ~10 leave ~1e-6 relative, so 1e-5.
  const double value_epsilon = dtype == "float64" ? 1e-12 : 1e-5;
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime(dtype));
  const std::vector<int64_t> prompt = {1, 317, 269, 274, 287, 263, 377, 267, 265};
  const std::vector<int64_t> outputs = {282, 295, 433, 267, 337};
  MethodOptions opts;
  opts.ig_steps = 6;
  for (const auto& m : gradient_methods()) {
    for (const auto& t : targets()) {
      auto ref = run(lm->model(), prompt, outputs, m.name, t.name, GradientAlgorithm::reference, 1, opts);
      // threads > 1 splits each chunk's rows across concurrent backward passes (unevenly here:
      // 3 rows over 2 threads, 5 over 3).
      for (auto [batch, threads] : {std::pair<int64_t, int>{1, 1}, {3, 2}, {16, 1}, {16, 3}}) {
        INFO(dtype << ": " << m.name << " x " << t.name << " max_batch " << batch << " threads " << threads);
        auto fast = run(lm->model(), prompt, outputs, m.name, t.name, GradientAlgorithm::fast, batch, opts, threads);
        const double worst = worst_row_relative(fast.scores, ref.scores);
        INFO("worst row-relative difference " << worst);
        CHECK(worst < tolerance);
        // f(x) per row: the fast algorithm reuses its alpha = 1 forward where it has one.
        REQUIRE(fast.target_values.size() == ref.target_values.size());
        for (size_t i = 0; i < ref.target_values.size(); ++i)
          CHECK(fast.target_values[i] == Approx(ref.target_values[i]).epsilon(value_epsilon).margin(1e-9));
      }
    }
  }
}

TEST_CASE("integrated gradients: completeness gap below 1% at 64 steps (float64, pad baseline)", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  MethodOptions opts;
  opts.ig_steps = 64;
  // The pad baseline (pizza's default). A zero baseline passes every RMSNorm input through
  // zero, where the path integrand is nearly singular, and needs far more steps (README).
  for (auto baseline : {Baseline::pad}) {
    opts.baseline = baseline;
    auto ig = run(lm->model(), {1, 403, 407, 261, 378, 432}, {383, 286, 261}, "integrated-gradients", "prob",
                  GradientAlgorithm::fast, 64, opts);
    REQUIRE(ig.completeness_gap.size() == 3);
    for (size_t t = 0; t < 3; ++t) {
      const double delta = ig.target_values[t] - ig.baseline_values[t];
      INFO("row " << t << " gap " << ig.completeness_gap[t] << " f(x)-f(b) " << delta);
      // The Riemann sum's error at 64 steps (an algorithmic bound, float64): 1% of f(x) - f(b).
      CHECK(std::fabs(ig.completeness_gap[t]) < 0.01 * std::fabs(delta));
    }
  }
}

// bfloat16 keeps 8 significant bits, so its gradients can only approximate float32's (on
// stories260K saliency rows differ by up to ~17% of the row maximum; signed input x gradient far
// more, through cancellation). This checks the whole path runs in that dtype (additive mask,
// one-hot seeds, written backwards) and stays in float32's neighbourhood.
TEST_CASE("bfloat16: gradient attribution runs and approximates float32", "[attribution]") {
  auto f32 = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime());
  auto bf16 = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("bfloat16"));
  const std::vector<int64_t> prompt = {1, 403, 407, 261, 378, 432};
  const std::vector<int64_t> outputs = {383, 286, 261};
  auto want = run(f32->model(), prompt, outputs, "saliency", "prob", GradientAlgorithm::fast, 16, {});
  for (auto algorithm : {GradientAlgorithm::fast, GradientAlgorithm::reference}) {
    auto got = run(bf16->model(), prompt, outputs, "saliency", "prob", algorithm, 16, {});
    const double worst = worst_row_relative(got.scores, want.scores);
    INFO("worst row-relative difference " << worst);
    CHECK(worst < 0.25);  // 8 significant bits: observed ~17% (above); float32's kernel noise is ~1e-5
    for (size_t i = 0; i < want.target_values.size(); ++i)
      CHECK(got.target_values[i] == Approx(want.target_values[i]).epsilon(0.05));  // bf16 unit roundoff 2^-9 = 0.2%, over 5 layers
  }
}
