// Causal self-attention over whole [T, T] score matrices: three batched products around
// LibTorch's softmax, with a hand-written backward (five products and one softmax backward).
// An experiment against LibTorch's CPU flash-attention kernels at short contexts
// (docs/benchmarks.md): in training it measured level with SDPA, so it is not kept.
#pragma once

#include <torch/types.h>

namespace stoch::models {

// q, k, v: [B, H, T, D] (any strides) -> [B, H, T, D]; position i attends to positions <= i,
// scores scaled by 1/sqrt(D). dropout_p > 0 drops attention probabilities (inverted dropout,
// from LibTorch's default generator), as SDPA's dropout does.
torch::Tensor batched_causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, double dropout_p);

}  // namespace stoch::models
