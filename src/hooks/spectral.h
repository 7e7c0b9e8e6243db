// The linear algebra of the spectral hook, exposed for tests: alignment of a representation H
// [N, d] with the prototypes Gbar [N, k] (the operator K = Gbar Gbar^T), in O(N d^2).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace stoch::hooks {

// Keys (under `prefix`): k_effective_rank, g_rank (Gbar's numerical rank), kyfan_r<r>,
// overlap_r<r>, cca_r<r> for r in {8, 16, 32, 64} no larger than min(d, k), and cka. The subspace
// metrics use only the directions within each matrix's numerical rank. Inputs are centred here.
std::map<std::string, double> spectral_alignment(const at::Tensor& H, const at::Tensor& Gbar,
                                                 double eps, const std::string& prefix);

}  // namespace stoch::hooks
