// Softmax, log-softmax, SiLU, gated activations, RMSNorm, rotary embeddings and row selections
// whose backward is written in plain pointwise and reduction operations; and the relevance rules
// (model/relevance.h) of the norms and activations, as modified backwards beside the ordinary ones.
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
#include "model/relevance.h"

namespace pizza {

// softmax over the last dimension, computed in `dtype` (as torch::softmax(x, -1, dtype)).
torch::Tensor softmax_last(const torch::Tensor& x, torch::Dtype dtype);

torch::Tensor log_softmax_last(const torch::Tensor& x);

torch::Tensor silu(const torch::Tensor& x);

// The activation function of a config, elementwise. Under LRP rules its backward is the
// identity rule: the incoming gradient times act(x) / (x + 1e-10) (lxt's epsilon), in float32 at
// least, and act'(0) where that denominator is exactly 0.
torch::Tensor activation(Activation a, const torch::Tensor& x, Relevance rules = Relevance::gradient);

// Gated MLP activation act(gate) * up over the two halves of one stacked projection
// [..., 2I] = [gate | up] -> [..., I]. Its backward is one broadcast product with the
// derivatives saved by the forward (act'(gate) * up and act(gate)), whatever the activation.
// AttnLRP: the product's uniform rule halves both factors' gradients and the activation takes
// the identity rule ((act(gate) / gate) * up / 2 and act(gate) / 2). CP-LRP: the gate branch is a
// constant (0 and act(gate)).
torch::Tensor gated_activation(const torch::Tensor& gate_up, Activation a, Relevance rules = Relevance::gradient);

// Rotary position embedding x * cos + rotate(x) * sin, where rotate turns each pair of
// dimensions a quarter turn: halves (x1, x2) -> (-x2, x1), or with `interleaved` each (a, b) ->
// (-b, a) (Cohere). cos/sin broadcast against x.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool interleaved);

// RMSNorm over the last dimension, normalised in float32 (float64 for float64 x) as
// transformers does: weight * (x / rms(x)) in x's dtype, or with `one_plus` (Gemma)
// ((1 + weight) * x / rms(x)) computed before the cast back. Under LRP rules 1 / rms(x) is a
// constant in the backward (x * stopgrad(rsqrt(mean(x^2) + eps)) * weight).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool one_plus,
                       Relevance rules = Relevance::gradient);

// LayerNorm over the last dimension (weight and bias may be undefined). Under LRP rules the
// standard deviation is a constant in the backward, the mean is not: (x - mean(x)) /
// stopgrad(std(x)) * weight + bias, whose backward centres the scaled gradient (float32 at least).
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                         Relevance rules = Relevance::gradient);

// x[..., index] for an int64 `index` shaped like x without its last dimension (a gather whose
// backward is a multiplication).
torch::Tensor pick_last(const torch::Tensor& x, const torch::Tensor& index);

// x [B, T, D], index [B, K] int64 -> [B, K, D] = x[b, index[b, k]] (exact: a one-hot product in
// grad mode).
torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& index);

}  // namespace pizza
