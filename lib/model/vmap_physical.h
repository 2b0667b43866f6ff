// Written backward formulas that work on the physical tensor behind ATen's vmap.
//
// attribution/gradient.cpp differentiates many output rows in one backward pass by running it
// under vmap (a BatchedTensor wraps every gradient). vmap only batches the operations it has a
// rule for and loops over the rows for the others (addcmul, mean, ...). A backward that
// unwraps the gradient to its physical value [N, logical...] can use any operation, fold the
// N rows into matrix products, and wrap its results again.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <utility>

namespace pizza {

// A vmap-batched tensor as its physical value with the batch dimension first ([N, logical...]),
// and the vmap level to re-wrap results with; a plain tensor as [1, ...] and no level.
std::pair<torch::Tensor, std::optional<int64_t>> unbatch(const torch::Tensor& t);

// The inverse of unbatch: `physical` [N, logical...] wrapped at `level` (or [logical...]).
torch::Tensor rebatch(const torch::Tensor& physical, std::optional<int64_t> level);

}  // namespace pizza
