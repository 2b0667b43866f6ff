// AttnLRP and CP-LRP (attribution/methods/lrp.cpp, rules in model/grad_ops.cpp and
// model/attention_core.cpp) against the authors' rules: ../shared/reference/stories260K/attnlrp.json
// holds relevance computed with lxt's rules on Hugging Face transformers' Llama in float64. Also
// conservation (CP-LRP on bias-free models), fast == reference, and every norm/activation kind.
#include "support/torch_catch.h"

#include <simdjson.h>

#include <cmath>
#include <map>

#include "attribution/gradient.h"
#include "checkpoint/model_config.h"
#include "support/paths.h"
#include "support_torch/reference.h"

using namespace pizza;

using pizza::test::worst_row_relative;

namespace {

std::vector<int64_t> int_list(simdjson::dom::element e) {
  std::vector<int64_t> out;
  simdjson::dom::array arr = e.get_array().value();  // named: range-for over value() of a temporary dangles
  for (auto v : arr) out.push_back(v.get_int64().value());
  return out;
}

std::vector<double> double_list(simdjson::dom::element e) {
  std::vector<double> out;
  simdjson::dom::array arr = e.get_array().value();
  for (auto v : arr) out.push_back(v.get_double().value());
  return out;
}

// The file's ragged rows (row t has P + t entries) as an [N, P + N] matrix padded with zeros,
// the engine's layout.
torch::Tensor ragged_matrix(simdjson::dom::element e, int64_t cols) {
  std::vector<torch::Tensor> rows;
  simdjson::dom::array arr = e.get_array().value();
  for (auto row : arr) {
    auto r = double_list(row);
    auto t = torch::zeros({cols}, torch::kFloat64);
    t.slice(0, 0, static_cast<int64_t>(r.size())).copy_(torch::tensor(r, torch::kFloat64));
    rows.push_back(t);
  }
  return torch::stack(rows);
}

GradientAttribution run(const Transformer& model, const std::vector<int64_t>& prompt, const std::vector<int64_t>& outputs,
                        const std::string& method, GradientAlgorithm algo = GradientAlgorithm::fast,
                        const std::string& target = "logit", int64_t max_batch = 16, int threads = 1) {
  auto req = test::gradient_request(prompt, outputs, method, target);
  req.algorithm = algo;
  req.max_batch = max_batch;
  req.threads = threads;
  return attribute_gradients(model, req);
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

struct Case {
  std::string variant, target;
  std::vector<int64_t> input_ids, generated_ids;
  torch::Tensor relevance;
  std::vector<double> target_values, conservation_gap;
};

std::vector<Case> load_cases() {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const auto path = test::shared("reference/stories260K/attnlrp.json");
  REQUIRE(!parser.load(path.string()).get(doc));  // missing data fails, never skips
  std::vector<Case> cases;
  simdjson::dom::array all = doc["cases"].get_array().value();
  for (auto c : all) {
    Case k;
    k.variant = std::string(c["variant"].get_string().value());
    k.target = std::string(c["target"].get_string().value());
    k.input_ids = int_list(c["input_ids"].value());
    k.generated_ids = int_list(c["generated_ids"].value());
    const auto cols = static_cast<int64_t>(k.input_ids.size() + k.generated_ids.size());
    k.relevance = ragged_matrix(c["relevance"].value(), cols);
    k.target_values = double_list(c["target_values"].value());
    k.conservation_gap = double_list(c["conservation_gap"].value());
    cases.push_back(std::move(k));
  }
  return cases;
}

}  // namespace

TEST_CASE("attnlrp.json: AttnLRP and CP-LRP relevance match lxt's rules on transformers (float64)", "[attribution][lrp]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  const auto cases = load_cases();
  std::map<std::string, int> seen;
  for (const auto& c : cases) {
    ++seen[c.variant];
    for (auto algo : {GradientAlgorithm::fast, GradientAlgorithm::reference}) {
      INFO(c.variant << " target " << c.target << (algo == GradientAlgorithm::fast ? " fast" : " reference"));
      auto ours = run(lm->model(), c.input_ids, c.generated_ids, c.variant, algo, c.target);
      REQUIRE(ours.scores.sizes() == c.relevance.sizes());
      const double worst = worst_row_relative(ours.scores, c.relevance);
      INFO("worst row-relative deviation " << worst);
      // Both sides float64 with the same rules: rounding is ~1e-14 of the row maximum whatever
      // the BLAS kernel; a rule slip (a missing /2, a norm not frozen) moves rows by >= 1e-2.
      CHECK(worst < 1e-6);
      REQUIRE(ours.target_values.size() == c.target_values.size());
      REQUIRE(ours.conservation_gap.size() == c.conservation_gap.size());
      for (size_t t = 0; t < c.target_values.size(); ++t) {
        // transformers' Llama computes its rotary cos/sin in float32 even in a float64 model, so
        // its logits sit ~3e-8 relative from an all-float64 forward (observed); the relevance
        // above absorbs the same ~1e-7 row-relative. 1e-6 is above that and far below any slip.
        CHECK(ours.target_values[t] == Approx(c.target_values[t]).epsilon(1e-6));
        // The gap is a sum of the row (a few entries of magnitude ~1): float64 rounding ~1e-14.
        CHECK(ours.conservation_gap[t] == Approx(c.conservation_gap[t]).margin(1e-9));
      }
    }
  }
  CHECK(seen["attnlrp"] >= 1);
  CHECK(seen["cp-lrp"] >= 1);
}

TEST_CASE("CP-LRP conserves the logit on stories260K and AttnLRP keeps most of it (float64)", "[attribution][lrp]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime("float64"));
  const std::vector<int64_t> prompt = {1, 317, 269, 274, 287, 263, 377, 267, 265};
  const std::vector<int64_t> outputs = {282, 295, 433, 267, 337, 261};
  auto cp = run(lm->model(), prompt, outputs, "cp-lrp");
  REQUIRE(cp.conservation_gap.size() == outputs.size());
  for (size_t t = 0; t < outputs.size(); ++t) {
    INFO("row " << t << " logit " << cp.target_values[t] << " gap " << cp.conservation_gap[t]);
    // Bias-free Llama with its probabilities and gates constant is linear in the embeddings, so
    // sum(x * gradient) = f(x) exactly (Euler); float64 rounding over ~10^5 terms ~1e-13.
    CHECK(std::fabs(cp.conservation_gap[t]) < 1e-9 * std::max(1.0, std::fabs(cp.target_values[t])));
  }
  // AttnLRP's softmax rule loses relevance: lxt's rules keep about 60-90% of the logit here
  // (the reference file's rows keep 62-85%). Not a tolerance, a sanity band.
  auto attn = run(lm->model(), prompt, outputs, "attnlrp");
  for (size_t t = 0; t < outputs.size(); ++t) {
    const double kept = (attn.conservation_gap[t] + attn.target_values[t]) / attn.target_values[t];
    INFO("row " << t << " kept " << kept);
    CHECK(kept > 0.3);
    CHECK(kept < 1.2);
  }
  // --abs reports magnitudes; the gap stays that of the signed relevance.
  GradientRequest req;
  req.prompt = prompt;
  req.outputs = outputs;
  req.method = find_gradient_method("cp-lrp");
  req.target = &find_target("logit");
  req.options.abs = true;
  auto abs = attribute_gradients(lm->model(), req);
  CHECK(torch::equal(abs.scores, cp.scores.abs()));
  CHECK(abs.conservation_gap == cp.conservation_gap);
}

// Targets other than the logit run through the same rules: fast == reference for every target
// is covered by gradient_test.cpp's every-method test (the LRP methods are in the registry).
TEST_CASE("LRP methods default to the logit target and are registered", "[attribution][lrp]") {
  for (const char* name : {"attnlrp", "cp-lrp"}) {
    const auto* m = find_gradient_method(name);
    REQUIRE(m != nullptr);
    CHECK(m->default_target == "logit");
    CHECK(m->rules != Relevance::gradient);
    CHECK_FALSE(m->uses_baseline);
  }
  CHECK(find_gradient_method("saliency")->default_target == "prob");
}

// Every supported fixture architecture (every norm and activation kind, MoE, q/k norms, clipped
// qkv, interleaved rotary, soft-capping, sliding windows, parallel residuals): rows finite and
// not all zero, fast == reference in float64 (1e-9 of the row maximum: the same rounding
// argument as gradient_test.cpp), and CP-LRP conserves exactly where the model is linear in the
// embeddings once its probabilities, gates and norm scales are constants: no biases, no learned
// positions, no final soft-cap, no routers, no clamp.
TEST_CASE("LRP methods on every fixture architecture: fast equals reference and bias-free families conserve",
          "[attribution][lrp][fixtures]") {
  const auto& supported = supported_model_types();
  size_t checked = 0, conserving = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::shared("fixtures"))) {
    if (!entry.is_directory() || !std::filesystem::exists(entry.path() / "config.json")) continue;
    const auto cfg = load_model_config(entry.path());
    if (std::find(supported.begin(), supported.end(), cfg.model_type) == supported.end()) continue;
    const bool conserves = !cfg.attention_bias && !cfg.attention_out_bias && !cfg.mlp_bias && !cfg.norm_bias &&
                           !cfg.lm_head_bias && cfg.positions == PositionKind::rope && !cfg.final_logit_softcap &&
                           cfg.num_experts == 0 && !cfg.clip_qkv;
    const auto name = entry.path().filename().string();
    DYNAMIC_SECTION(name) {
      test::ReferenceTensors ref(entry.path() / "reference.safetensors");
      auto lm = LanguageModel::load_weights(entry.path(), test::cpu_runtime("float64"));
      const auto prompt = to_vector(ref["input_ids"]), outputs = to_vector(ref["greedy_ids"]);
      for (const char* method : {"attnlrp", "cp-lrp"}) {
        INFO(name << " " << method << (conserves ? " (bias-free)" : ""));
        auto fast = run(lm->model(), prompt, outputs, method, GradientAlgorithm::fast, "logit", 3, 2);
        auto reference = run(lm->model(), prompt, outputs, method, GradientAlgorithm::reference);
        CHECK(fast.scores.isfinite().all().item<bool>());
        CHECK(fast.scores.abs().sum().item<double>() > 0);
        CHECK(worst_row_relative(fast.scores, reference.scores) < 1e-9);
        if (conserves && std::string(method) == "cp-lrp")
          for (size_t t = 0; t < fast.conservation_gap.size(); ++t)
            CHECK(std::fabs(fast.conservation_gap[t]) < 1e-9 * std::max(1.0, std::fabs(fast.target_values[t])));
      }
    }
    ++checked;
    if (conserves) ++conserving;
  }
  CHECK(checked >= 15);   // the fixtures README lists 20 architectures
  CHECK(conserving >= 3);  // llama, mistral, phi3, gemma, ... at least
}
