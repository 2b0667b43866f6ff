// Contrastive targets (Yin & Neubig, 2022): row t explains target(y_t) - target(foil_t), both read
// at the position that predicts y_t. Checked against central finite differences of that
// difference computed here from the model's logits (softmax / log-softmax written out, not the
// library's targets), and for every method and target the fast algorithm against the reference.
#include "support/torch_catch.h"

#include <cmath>
#include <random>

#include "attribution/gradient.h"
#include "support/paths.h"
#include "support_torch/reference.h"

using namespace pizza;

using pizza::test::worst_row_relative;

namespace {

const std::vector<int64_t> kPrompt = {1, 403, 407, 261, 378, 432, 383};
const std::vector<int64_t> kOutputs = {286, 261, 376, 298};
// A foil per output token; position 1 repeats the output's token, so that row contrasts a token
// with itself and must be exactly 0.
const std::vector<int64_t> kFoils = {301, 261, 290, 355};

GradientAttribution run(const Transformer& model, const std::string& method, const std::string& target,
                        const std::vector<int64_t>& foils, GradientAlgorithm algo = GradientAlgorithm::fast) {
  auto req = test::gradient_request(kPrompt, kOutputs, method, target);
  req.foils = foils;
  req.algorithm = algo;
  req.max_batch = 3;
  req.options.ig_steps = 6;
  req.pad_id = 0;
  return attribute_gradients(model, req);
}

// target(y) - target(foil) at the last position of `embeds` [L, D], written out from the logits.
double contrast(const Transformer& model, const torch::Tensor& embeds, const std::string& target, int64_t y, int64_t foil) {
  auto logits = model.forward(embeds.unsqueeze(0))[0][-1].to(torch::kFloat64);  // [V]
  if (target == "logit") return (logits[y] - logits[foil]).item<double>();
  const auto m = logits.max();
  const auto log_z = (logits - m).exp().sum().log() + m;
  const double lp_y = (logits[y] - log_z).item<double>(), lp_f = (logits[foil] - log_z).item<double>();
  return target == "logprob" ? lp_y - lp_f : std::exp(lp_y) - std::exp(lp_f);
}

}  // namespace

TEST_CASE("contrastive targets equal central finite differences of target(y) - target(foil) in float64 on stories260K",
          "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  const auto& model = lm->model();
  std::vector<int64_t> seq = kPrompt;
  seq.insert(seq.end(), kOutputs.begin(), kOutputs.end());
  torch::Tensor embeds;
  {
    torch::NoGradGuard ng;
    embeds = model.embed(torch::tensor(seq).view({1, -1}))[0];
  }
  std::mt19937 rng(77);
  for (const std::string target : {"prob", "logprob", "logit"}) {
    for (auto algo : {GradientAlgorithm::fast, GradientAlgorithm::reference}) {
      // Input x gradient: score[t][j] = sum_d x_jd df/dx_jd, the derivative of f along the
      // scaling of embedding j, f((1 + h) e_j) - f((1 - h) e_j) over 2h.
      const auto got = run(model, "input-x-gradient", target, kFoils, algo);
      torch::NoGradGuard ng;
      for (size_t t = 0; t < kOutputs.size(); ++t) {
        const int64_t L = static_cast<int64_t>(kPrompt.size() + t);
        const auto prefix = embeds.slice(0, 0, L);
        const double value = contrast(model, prefix, target, kOutputs[t], kFoils[t]);
        INFO(target << " row " << t);
        CHECK(got.target_values[t] == Approx(value).epsilon(1e-12).margin(1e-14));
        if (kOutputs[t] == kFoils[t]) {
          CHECK(value == 0.0);
          CHECK(got.scores[static_cast<int64_t>(t)].abs().max().item<double>() == 0.0);
          continue;
        }
        for (int k = 0; k < 3; ++k) {
          const int64_t j = std::uniform_int_distribution<int64_t>(0, L - 1)(rng);
          const double h = 1e-5;
          auto scaled = [&](double s) {
            auto e = prefix.clone();
            e[j].mul_(s);
            return contrast(model, e, target, kOutputs[t], kFoils[t]);
          };
          const double numeric = (scaled(1 + h) - scaled(1 - h)) / (2 * h);
          const double analytic = got.scores[static_cast<int64_t>(t)][j].item<double>();
          INFO("position " << j << ": analytic " << analytic << " numeric " << numeric);
          // As the finite-difference test of gradient_test.cpp: float64 central differences are
          // good to ~1e-10, a wrong target (e.g. the foil's sign flipped) is off by O(1).
          CHECK(std::fabs(analytic - numeric) <= 1e-5 * std::max(std::fabs(numeric), 1e-3));
        }
      }
    }
  }
}

TEST_CASE("contrastive targets: every method with prob and logit, fast equals reference (float64)", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  for (const auto& m : gradient_methods()) {
    for (const std::string target : {"prob", "logit"}) {
      INFO(m.name << " x " << target);
      const auto ref = run(lm->model(), m.name, target, kFoils, GradientAlgorithm::reference);
      const auto fast = run(lm->model(), m.name, target, kFoils);
      CHECK(worst_row_relative(fast.scores, ref.scores) < 1e-9);  // as gradient_test.cpp's float64 bound
      // Methods linear in the gradient (all but saliency's norms): the contrast is the
      // difference of the two single-token explanations, for the first row, whose context both
      // share (a one-token output).
      if (m.name == "saliency") continue;
      GradientRequest one;
      one.prompt = kPrompt;
      one.method = &m;
      one.target = &find_target(target);
      one.options.ig_steps = 6;
      one.pad_id = 0;
      one.outputs = {kOutputs[0]};
      const auto y = attribute_gradients(lm->model(), one).scores;
      one.outputs = {kFoils[0]};
      const auto f = attribute_gradients(lm->model(), one).scores;
      const auto diff = (y - f)[0];
      const auto row = fast.scores[0].slice(0, 0, diff.size(0));
      CHECK((row - diff).abs().max().item<double>() <= 1e-9 * std::max(1.0, diff.abs().max().item<double>()));
    }
  }
}

TEST_CASE("contrastive targets: a foil of another length and pizza-legacy are refused", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float32"));
  CHECK_THROWS_WITH(run(lm->model(), "saliency", "prob", {301, 290}), Catch::Contains("one foil token per output token"));
  CHECK_THROWS_WITH(run(lm->model(), "saliency", "pizza-legacy", kFoils), Catch::Contains("no contrastive form"));
}
