// --max-memory in the gradient engine: the budget only changes how many rows one backward
// takes, never the scores; a row that cannot fit fails before any work.
#include "support/torch_catch.h"

#include "attribution/gradient.h"
#include "support/paths.h"
#include "support_torch/reference.h"
#include "util/error.h"

using namespace pizza;
using test::worst_row_relative;

namespace {

const std::vector<int64_t> kPrompt = {1, 317, 269, 274, 287, 263, 377, 267, 265};
const std::vector<int64_t> kOutputs = {282, 295, 433, 267, 337};

GradientAttribution run(const Transformer& model, const std::string& method, int64_t max_memory, int threads = 1) {
  auto req = test::gradient_request(kPrompt, kOutputs, method, "prob");
  req.options.ig_steps = 4;
  req.options.baseline = Baseline::zero;
  req.max_batch = 16;
  req.max_memory = max_memory;
  req.threads = threads;
  return attribute_gradients(model, req);
}

}  // namespace

// A budget that fits one (row, point) gradient and no more runs one per backward; a generous one
// runs --max-batch. The scores differ only by the summation order of differently shaped
// products: float64 rounding (~1e-15 of the row maximum; 1e-12 is kernel- and thread-proof), and
// in float32 the 1e-4 of the row maximum worked out in tests/cli/local_threads_test.cpp.
TEST_CASE("gradient results are the same under a budget that forces one row per backward", "[attribution]") {
  const auto [dtype, tolerance] = GENERATE(std::pair<std::string, double>{"float64", 1e-12}, std::pair<std::string, double>{"float32", 1e-4});
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime(dtype));
  const auto& model = lm->model();
  const auto mem = estimate_gradient_memory(model.config(), model.dtype(), static_cast<int64_t>(kPrompt.size()),
                                            static_cast<int64_t>(kOutputs.size()));
  const int64_t one_row = weight_bytes(model) + mem.total(1, 1, 1);
  // Rows x points per backward at --max-batch 16: saliency and attnlrp 5 rows x 1 point;
  // integrated gradients 5 rows x 3 of its 4 points (16 / 5).
  for (auto [method, most] : {std::pair<const char*, int64_t>{"saliency", 5}, {"integrated-gradients", 15}, {"attnlrp", 5}}) {
    for (int threads : {1, 2}) {
      INFO(dtype << " " << method << " threads " << threads);
      auto small = run(model, method, one_row, threads);
      auto large = run(model, method, int64_t{1} << 40, threads);
      CHECK(small.rows_per_pass == 1);
      CHECK(large.rows_per_pass == most);
      CHECK(small.estimated_bytes <= one_row);
      CHECK(small.passes > large.passes);
      CHECK(worst_row_relative(small.scores, large.scores) < tolerance);
      REQUIRE(small.target_values.size() == large.target_values.size());
      for (size_t i = 0; i < small.target_values.size(); ++i)
        CHECK(small.target_values[i] == Approx(large.target_values[i]).epsilon(dtype == "float64" ? 1e-12 : 1e-5));
    }
  }
}

TEST_CASE("a budget between one row and max-batch picks the most rows that fit", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime());
  const auto& model = lm->model();
  const auto mem = estimate_gradient_memory(model.config(), model.dtype(), static_cast<int64_t>(kPrompt.size()),
                                            static_cast<int64_t>(kOutputs.size()));
  // Saliency has one point: three rows per backward fit, four do not (one thread: one pass).
  const int64_t budget = weight_bytes(model) + mem.total(3, 1, 1) + mem.per_row / 2;
  auto r = run(model, "saliency", budget);
  CHECK(r.rows_per_pass == 3);
  CHECK(r.passes == 2);  // rows 0-2, then 3-4
}

TEST_CASE("a budget below one row fails before any work and says how much one row needs", "[attribution]") {
  auto lm = LanguageModel::load_weights(test::shared("models/stories260K"), test::cpu_runtime());
  auto req = test::gradient_request(kPrompt, kOutputs, "saliency", "prob");
  req.max_memory = weight_bytes(lm->model()) + 1;
  bool progressed = false;
  req.progress = [&](size_t, size_t) { progressed = true; };
  for (auto algorithm : {GradientAlgorithm::fast, GradientAlgorithm::reference}) {
    req.algorithm = algorithm;
    try {
      attribute_gradients(lm->model(), req);
      FAIL("no error");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find("one row of saliency over 13 tokens needs ~") != std::string::npos);
      CHECK(msg.find("--max-memory allows") != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
  CHECK_FALSE(progressed);
}

// The attention probabilities and their gradients dominate long rows: the estimate per row grows
// with the square of the length (a 135M-shaped model: 30 layers, 9 heads).
TEST_CASE("the per-row estimate grows with the square of the sequence length", "[attribution]") {
  ModelConfig cfg;
  cfg.num_layers = 30;
  cfg.hidden_size = 576;
  cfg.num_heads = 9;
  cfg.num_kv_heads = 3;
  cfg.head_dim = 64;
  cfg.intermediate_size = 1536;
  cfg.vocab_size = 49152;
  const auto at = [&](int64_t L) { return estimate_gradient_memory(cfg, torch::kFloat32, L, 16); };
  const double ratio = static_cast<double>(at(4096).per_row) / static_cast<double>(at(2048).per_row);
  CHECK(ratio > 3.5);
  CHECK(ratio <= 4.0);
  // At least the four [H, L, L] float32 softmax-backward transients of one layer.
  CHECK(at(2048).per_row >= 4 * 9 * int64_t{2063} * 2063 * 4);
  // The forward no longer keeps every layer's probabilities (30 x [9, L, L] float32, 4.6 GB):
  // the backward recomputes one layer's at a time.
  CHECK(at(2048).per_point < 30 * 9 * int64_t{2063} * 2063 * 4);
  CHECK(at(2048).per_pass >= 9 * int64_t{2063} * 2063 * 4);
}
