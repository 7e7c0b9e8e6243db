// Next-token cross-entropy through the tied unembedding, a chunk of rows at a time: the
// [N, vocab] float32 logits (2.5 GB for GPT-2 at batch 12 x 1024) are never held at once. The
// forward pass also computes the gradients of its chunk (the loss ends the graph, so only a
// scalar is left for the backward pass to apply), so nothing is recomputed.
#pragma once

#include <torch/types.h>

namespace stoch::models {

// h [N, d] hidden states, w [V, d] unembedding, targets [N] (int64) -> mean cross-entropy, a
// float32 scalar (float64 for float64 inputs), differentiable with respect to h and w. Products run in the autocast dtype
// when autocast is on for h's device (as `h @ w.T` would), softmax and sums in float32.
torch::Tensor chunked_cross_entropy(const torch::Tensor& h, const torch::Tensor& w,
                                    const torch::Tensor& targets, int64_t chunk_rows);

}  // namespace stoch::models
