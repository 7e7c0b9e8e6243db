// Causal self-attention through stoch's own CPU kernels
// (models/kernels/causal_attention_kernels.h), with autograd: for float32 on the CPU, where they
// beat LibTorch's flash-attention kernels on the small heads CPU runs use. The GPT picks it with
// `model.attention: auto` on CPUs where it was measured faster (host_attention_preferred), or
// always with `model.attention: stoch`.
#pragma once

#include <torch/types.h>

#include <string>

#include "core/cpu_isa.h"

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

// Whether the kernels' clone for `isa` beat LibTorch's SDPA, forward + backward, for contexts of
// `context` positions on the CPUs they were measured on (bench/attention_bench,
// docs/benchmarks.md): the AVX-512 clone at every context it takes; the AVX2 clone up to 512
// (at 1024 its [T, T] matrices outgrow the cache and SDPA's tiles win); never the portable one,
// which loses to SDPA's own AVX2 kernels.
bool host_attention_preferred(CpuIsa isa, int64_t context);

// Whether `model.attention` = setting picks stoch's kernels (where causal_attention_host_supported
// takes the queries): always for stoch; for auto where host_attention_preferred says so on this
// CPU's clone.
bool host_attention_selected(const std::string& setting, int64_t context);

// What `model.attention` (auto, stoch, sdpa or plain) runs for heads of width head_dim over
// `context` positions, as one line for the run's log, e.g. "attention: stoch kernels (avx2)" or
// "attention: sdpa (stoch kernels slower on this CPU: portable clone)". cpu_float32: the model
// runs on the CPU in float32; dropout: attention dropout while training.
std::string describe_attention(const std::string& setting, bool cpu_float32, bool dropout,
                               int64_t context, int64_t head_dim);

}  // namespace stoch::models
