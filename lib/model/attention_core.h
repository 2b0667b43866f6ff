// The attention core softmax(q k^T * scale + mask) v with grouped-query heads, and a backward
// written for the vectorised gradient attribution.
//
// attribution/gradient.cpp runs one backward pass for many output rows at once (ATen's vmap
// over the grad outputs). Through ordinary matmuls that turns each head's small products into
// rows x heads tiny matrix products and broadcast copies of k and v per row. Here the rows of
// all seeds are folded into the matrices' row dimension instead, so each (batch, kv head) pair
// is one product with rows x queries rows. Outside grad mode it is the plain computation.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "model/relevance.h"

namespace pizza {

// q [B, H, T, hd]; k, v [B, G, S, hd] with H a multiple of G (query head h reads kv head
// h / (H / G), as transformers' repeat_kv); mask additive, [B, 1, T, S]. softcap: scores become
// tanh(scores / cap) * cap before the mask (Gemma 2). The softmax runs in float32 (float64 for
// float64 inputs). Returns [B, H, T, hd].
// Relevance rules: AttnLRP keeps the softmax's backward (under x * gradient it already is the
// softmax rule) and splits the two bilinear products uniformly, so the gradients into q and k
// are divided by 4 and into v by 2; CP-LRP makes the probabilities constants (no gradient into q
// and k; v's is the ordinary one). q and k are taken after the rotary embedding, k and v with
// their kv heads before any repetition (here they are never repeated, and the division is linear).
torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double scale, std::optional<double> softcap,
                             Relevance rules = Relevance::gradient);

}  // namespace pizza
