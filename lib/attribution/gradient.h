// The gradient attribution engine: for each output token t (row), the gradient of the
// target at the position that predicts t with respect to every earlier input embedding,
// reduced to one score per position by a method.
//
// Fast algorithm (default): one forward over the whole sequence per group of method points
// (causal attention lets every row share it: row t's target only sees the positions before
// P + t), then vectorised backward passes (ATen's vmap over one-hot grad outputs, as
// torch.autograd.grad(is_grads_batched=True) does) that each yield up to --max-batch rows'
// gradients: every backward operation runs once on row-batched operands, so the per-row
// work is large matrix products. The vocabulary projection and the target are
// differentiated once for all rows before the vectorised pass. Model weights never require
// gradients, so backward computes input gradients only. --max-batch bounds memory (rows per
// backward x points per forward).
// Reference algorithm: PIZZA's structure — one forward and one backward per row (and per
// point), recomputing the prefix each time. Kept for equivalence tests and benchmarks.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "attribution/method.h"
#include "attribution/target.h"
#include "model/transformer.h"

namespace pizza {

enum class GradientAlgorithm { fast, reference };

struct GradientRequest {
  std::vector<int64_t> prompt;   // P token ids (BOS included)
  std::vector<int64_t> outputs;  // N token ids to explain, following the prompt
  // Contrastive target (Yin & Neubig, 2022): empty, or N foil ids. Row t then explains
  // target(outputs[t]) - target(foils[t]), both read at the position that predicts outputs[t]
  // (the context is the real output, not the foil's).
  std::vector<int64_t> foils;
  const GradientMethod* method = nullptr;
  const Target* target = nullptr;
  MethodOptions options;
  GradientAlgorithm algorithm = GradientAlgorithm::fast;
  int64_t max_batch = 16;           // rows per vectorised backward (x points per forward)
  // CPU threads for the fast algorithm's backward: a chunk's rows are split across up to this
  // many concurrent passes, each with single-threaded kernels. 1: one pass at a time, whose
  // kernels use the runtime's threads. Other devices always run one pass at a time.
  int threads = 1;
  std::optional<int64_t> pad_id;    // for the pad baseline
  std::function<void(size_t done, size_t total)> progress;
};

struct GradientAttribution {
  torch::Tensor scores;                  // [N, P+N] float64; 0 where column >= P+t
  std::vector<double> target_values;     // f(x) per row (the difference, with foils)
  std::vector<double> baseline_values;   // f(baseline) per row (baseline methods only)
  std::vector<double> completeness_gap;  // sum(scores) - (f(x) - f(baseline)) (baseline methods only)
  // LRP methods: sum over positions of signed relevance - f(x) (before --abs).
  std::vector<double> conservation_gap;
  size_t passes = 0;                     // forward+backward passes run
};

GradientAttribution attribute_gradients(const Transformer& model, const GradientRequest& request);

}  // namespace pizza
