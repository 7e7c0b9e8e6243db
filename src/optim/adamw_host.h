// AdamW's update over float32 arrays in host memory: one pass per element range, no operator
// calls. The small networks of value-based RL spend more time in the operator calls around
// LibTorch's fused kernel (a list of tensors per call, a host read of each step count, slices
// to share the work between threads) than in its arithmetic.
#pragma once

#include <cstdint>

#include "core/cpu_isa.h"

namespace stoch::optim {

// Per-step constants of one parameter group.
struct AdamWStep {
  float decay;  // 1 - lr * weight_decay
  float beta1, beta2, eps;
  float step_size;  // lr / (1 - beta1^t)
  float inv_bias2;  // 1 / sqrt(1 - beta2^t)
};

AdamWStep adamw_step_constants(double lr, double beta1, double beta2, double eps,
                               double weight_decay, double t);

// p *= decay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p -= step_size * m / (sqrt(v) * inv_bias2 + eps), elementwise over [0, n). Each element's
// result is the same whatever the ranges a caller splits the arrays into.
void adamw_host_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& c);

// Whether the update's clone for `isa` beat LibTorch's fused kernel where it was measured
// (bench/adamw_bench, docs/benchmarks.md): the AVX2 and AVX-512 clones do; the portable one
// does not, so the optimiser takes LibTorch's kernel there.
bool adamw_host_preferred(CpuIsa isa);

}  // namespace stoch::optim
