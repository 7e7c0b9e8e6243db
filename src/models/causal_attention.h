// Causal self-attention through stoch's own CPU kernels (models/causal_attention_kernels.h),
// with autograd: for float32 on the CPU, where they beat LibTorch's flash-attention kernels on
// the small heads CPU runs use. The GPT picks it with `model.attention: auto`.
#pragma once

#include <torch/types.h>

namespace stoch::models {

// Longest context the kernels take: each thread holds a few [T, T] float32 matrices.
constexpr int64_t kHostAttentionMaxContext = 1024;

// Whether the kernels take q [B, H, T, D]: CPU, float32, D a multiple of 16 up to 128,
// T <= kHostAttentionMaxContext.
bool causal_attention_host_supported(const torch::Tensor& q);

// softmax(q k^T / sqrt(D), causal) v for q, k, v [B, H, T, D] (any strides with contiguous
// rows); differentiable in all three. The result is [B, H, T, D] over [B, T, H, D] memory, so
// merging the heads back needs no copy. Each head is computed by one thread start to finish,
// so results do not depend on the thread count.
torch::Tensor causal_attention_host(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v);

}  // namespace stoch::models
