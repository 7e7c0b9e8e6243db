// Causal softmax attention for one head on host arrays (float32), forward and backward: stoch's
// own CPU kernel for small heads. For the shapes small models train with (context 128, head
// width 32), LibTorch's CPU flash-attention kernels spend most of their time outside arithmetic
// (a sixth of MKL's large-product rate, forward + backward, docs/benchmarks.md). A head's whole
// [T, T] score matrix fits in cache there, so these kernels keep it, skip the masked upper
// triangle, and do every product as register-blocked multiply-adds over contiguous rows.
//
// Rows are contiguous (head_dim floats) and `*_stride` floats apart, so a head of a [B, T, H, D]
// or [B, H, T, D] tensor is read and written in place. No LibTorch here.
#pragma once

#include <cstdint>
#include <vector>

namespace stoch::models {

// Head widths the kernels take: multiples of 16 up to 128.
bool causal_attention_head_dim_supported(int64_t head_dim);

// Per-thread scratch, grown on demand (a few [T, T] and [D, T] buffers).
struct AttentionScratch {
  std::vector<float> buffer;
};

struct HeadRows {
  const float* data;
  int64_t stride;
};

// o = softmax(scale * q k^T, causal) v for T rows; lse[i] = log of row i's softmax denominator
// (with its max), which the backward uses to recompute the probabilities.
void causal_attention_head_forward(HeadRows q, HeadRows k, HeadRows v, int64_t T, int64_t head_dim,
                                   float scale, float* o, int64_t o_stride, float* lse,
                                   AttentionScratch& scratch);

// Gradients of the forward above given grad_o; o and lse are the forward's outputs.
void causal_attention_head_backward(HeadRows q, HeadRows k, HeadRows v, HeadRows o, HeadRows grad_o,
                                    const float* lse, int64_t T, int64_t head_dim, float scale,
                                    float* grad_q, float* grad_k, float* grad_v,
                                    int64_t grad_stride, AttentionScratch& scratch);

}  // namespace stoch::models
