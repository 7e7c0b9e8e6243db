// Target distributions for categorical value heads (Farebrother et al. 2024, "Stop Regressing";
// Bellemare et al. 2017 for C51): the support, two-hot, HL-Gauss, the C51 projection, and MuZero's
// value transform. All run under no-grad, compute in float32 at least (float64 when the input is
// float64), and return finite values for any finite input, however far outside the support.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace stoch::value {

// m + 1 edges v_min + k w, w = (v_max - v_min) / m, computed in float64 then cast.
torch::Tensor bin_edges(double v_min, double v_max, int64_t m, const torch::TensorOptions& opts);
// m centres (e_i + e_{i+1}) / 2.
torch::Tensor bin_centres(double v_min, double v_max, int64_t m, const torch::TensorOptions& opts);

// y [...] -> [..., m]: y clamped to [s_0, s_{m-1}] and split between its two neighbouring atoms
// of `support` (1-D, strictly increasing) so that the expectation over the support is y.
torch::Tensor two_hot_targets(const torch::Tensor& y, const torch::Tensor& support);

// y [...] -> [..., m]: N(y, sigma^2) integrated over each bin of `edges` (m + 1, increasing),
// truncated to the support and renormalised. y is clamped to [e_0, e_m] first so that the
// normaliser cannot underflow to 0.
torch::Tensor hl_gauss_targets(const torch::Tensor& y, const torch::Tensor& edges, double sigma);

// y [...] -> [..., m]: all the mass on the bin of `edges` (m + 1, increasing) that holds y,
// y clamped to [e_0, e_m] first; a y on an inner edge belongs to the bin above it.
torch::Tensor one_hot_targets(const torch::Tensor& y, const torch::Tensor& edges);

// C51's distributional Bellman target: next_probs [B, m] over `atoms` [m] (increasing),
// rewards [B], discounts [B] (gamma^n (1 - done)) -> [B, m]. Each atom moves to r + d z_j,
// is clamped to [z_0, z_{m-1}] and split between its two neighbouring atoms.
torch::Tensor c51_project(const torch::Tensor& next_probs, const torch::Tensor& rewards,
                          const torch::Tensor& discounts, const torch::Tensor& atoms);

// h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x (Pohlen et al. 2018, used by MuZero).
torch::Tensor muzero_h(const torch::Tensor& x, double eps = 1e-3);
// Closed-form inverse of muzero_h, rearranged to avoid cancellation for small |x|.
torch::Tensor muzero_h_inverse(const torch::Tensor& x, double eps = 1e-3);

// symlog(x) = sign(x) log(1 + |x|) (Hafner et al. 2023, DreamerV3) and its inverse
// symexp(x) = sign(x) (exp(|x|) - 1); float32 at least, as muzero_h.
torch::Tensor symlog(const torch::Tensor& x);
torch::Tensor symexp(const torch::Tensor& x);

}  // namespace stoch::value
