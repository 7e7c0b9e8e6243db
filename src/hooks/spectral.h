// The linear algebra of the spectral hook, exposed for tests: alignment of a representation H
// [N, d] with the prototypes Gbar [N, k] (the operator K = Gbar Gbar^T), in O(N d^2).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace stoch::hooks {

// Keys (under `prefix`): k_effective_rank, k_eig_<i> (K's top 8 eigenvalues over N), k_share_r<r>
// (their cumulative share of K's trace), g_rank (Gbar's numerical rank), kyfan_r<r>,
// overlap_r<r>, cca_r<r> for r in {8, 16, 32, 64} no larger than min(d, k), and cka. The subspace
// metrics use only the directions within each matrix's numerical rank, judged with the epsilon
// of the dtype each input comes in (pass H as the model computed it). Centred and taken to
// float64 here.
std::map<std::string, double> spectral_alignment(const at::Tensor& H, const at::Tensor& Gbar,
                                                 double eps, const std::string& prefix);

}  // namespace stoch::hooks
