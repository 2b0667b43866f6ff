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
// backward x points per forward), and so does --max-memory through an estimate of the bytes
// per row (estimate_gradient_memory).
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
  // Bytes the run may hold, the model's weights included (0: no bound but --max-batch). The fast
  // algorithm lowers its rows per backward (and points per forward) until the estimate
  // (estimate_gradient_memory) fits; when one row does not fit, InputError before any work.
  int64_t max_memory = 0;
  // What the process already holds against that budget (0: the model's weights, weight_bytes):
  // pizza local passes its resident memory, libtorch and the tokenizer included.
  int64_t resident_bytes = 0;
  // done and total count (row, point) gradients: rows x the method's points.
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
  int64_t rows_per_pass = 0;             // (row, point) gradients per vectorised backward
  int64_t estimated_bytes = 0;           // estimate_gradient_memory's total at that size, weights included
};

// An estimate of the memory a fast-algorithm run holds beyond the weights, from the model's
// shape, the dtype and the sequence length L = P + N - 1, derived from what the code keeps: per
// point of a forward, the graph the backward reads (per layer the normalised inputs, q, k, v, the
// gated activation's derivatives and the linear layers' inputs; not the attention probabilities,
// which the backward recomputes: model/attention_core.cpp) plus the forward's transient scores
// [H, L, L]; per concurrent backward pass (a thread's share of the rows) and point, one layer's
// recomputed probabilities and their transients; per (row, point) of a vectorised backward, the
// softmax backward's transients (about four [H, L, L] tensors in the softmax's dtype, two more in
// the compute dtype when it differs) and the gradients of one layer's activations; fixed, the
// float64 accumulators [N, P+N, D], the embeddings and the logits [L, V] of the targets' forward.
struct GradientMemory {
  int64_t fixed = 0, per_point = 0, per_row = 0, per_pass = 0;
  // rows and points of one backward, split into `passes` concurrent backward passes.
  int64_t total(int64_t rows, int64_t points, int64_t passes = 1) const {
    return fixed + points * per_point + rows * points * per_row + passes * points * per_pass;
  }
};
GradientMemory estimate_gradient_memory(const ModelConfig& cfg, torch::Dtype dtype, int64_t prompt, int64_t outputs);

// The bytes of the model's weights (each storage once: tied tables count once).
int64_t weight_bytes(const Transformer& model);

// attribute_gradients' memory check alone (InputError when one row cannot fit --max-memory), for
// callers that can check before generating the outputs (with as many placeholder outputs as
// they may generate: more outputs never need less).
void check_gradient_memory(const Transformer& model, const GradientRequest& request);

GradientAttribution attribute_gradients(const Transformer& model, const GradientRequest& request);

}  // namespace pizza
