// Softmax, log-softmax, SiLU, gated activations, RMSNorm, rotary embeddings and row selections
// whose backward is written in plain pointwise and reduction operations.
//
// The batched gradient attribution (attribution/gradient.cpp) differentiates every output row
// in one vectorised backward pass (ATen's vmap over the grad outputs). ATen has no vmap batching
// rule for some backward kernels (_softmax_backward_data, silu_backward, mean) and falls back to
// a slow loop over the batch for them, and autograd's generic formulas (RMSNorm's pow/mean/rsqrt
// chain, the slices of the rotation) make several passes over the batched gradients where one
// or two do. These functions compute the same forward values and give autograd a backward made
// of mul, sub and sum (or a matrix product), which vmap batches natively. Outside grad mode they
// are the plain ops.
#pragma once

#include <torch/torch.h>

#include "checkpoint/model_config.h"

namespace pizza {

// softmax over the last dimension, computed in `dtype` (as torch::softmax(x, -1, dtype)).
torch::Tensor softmax_last(const torch::Tensor& x, torch::Dtype dtype);

torch::Tensor log_softmax_last(const torch::Tensor& x);

torch::Tensor silu(const torch::Tensor& x);

// The activation function of a config, elementwise.
torch::Tensor activation(Activation a, const torch::Tensor& x);

// Gated MLP activation act(gate) * up over the two halves of one stacked projection
// [..., 2I] = [gate | up] -> [..., I]. Its backward is one broadcast product with the
// derivatives saved by the forward (act'(gate) * up and act(gate)), whatever the activation.
torch::Tensor gated_activation(const torch::Tensor& gate_up, Activation a);

// Rotary position embedding x * cos + rotate(x) * sin, where rotate turns each pair of
// dimensions a quarter turn: halves (x1, x2) -> (-x2, x1), or with `interleaved` each (a, b) ->
// (-b, a) (Cohere). cos/sin broadcast against x.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool interleaved);

// RMSNorm over the last dimension, normalised in float32 (float64 for float64 x) as
// transformers does: weight * (x / rms(x)) in x's dtype, or with `one_plus` (Gemma)
// ((1 + weight) * x / rms(x)) computed before the cast back.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool one_plus);

// x[..., index] for an int64 `index` shaped like x without its last dimension (a gather whose
// backward is a multiplication).
torch::Tensor pick_last(const torch::Tensor& x, const torch::Tensor& index);

// x [B, T, D], index [B, K] int64 -> [B, K, D] = x[b, index[b, k]] (exact: a one-hot product in
// grad mode).
torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& index);

}  // namespace pizza
