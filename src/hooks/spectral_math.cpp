#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "core/strings.h"
#include "hooks/spectral.h"

namespace stoch::hooks {
namespace {

// The relative spacing of floats of `type`: the round-off a matrix carries from where it was
// computed (the hidden states come from a float32 or bf16 forward pass, then turn float64 here).
double machine_epsilon(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return std::numeric_limits<float>::epsilon();
    case at::kBFloat16:
      return 0.0078125;  // 2^-7
    case at::kHalf:
      return 0.0009765625;  // 2^-10
    default:
      return std::numeric_limits<double>::epsilon();
  }
}

// How many singular values (descending) stand above round-off: numpy's matrix_rank rule for a
// matrix of the dtype it was computed in, s > s_max * max(rows, cols) * its epsilon. (With
// float64's epsilon, a float32 LayerNorm output's null direction, at 3e-8 of the largest
// singular value, counted as a real one.)
int64_t numerical_rank(const at::Tensor& s, double rows, int64_t cols, double epsilon) {
  if (s.numel() == 0) return 0;
  const double tol = s[0].item<double>() * std::max(rows, static_cast<double>(cols)) * epsilon;
  return (s > tol).sum().item<int64_t>();
}

}  // namespace

std::map<std::string, double> spectral_alignment(const at::Tensor& H_in, const at::Tensor& G_in,
                                                 double eps, const std::string& prefix) {
  const auto H = H_in.to(torch::kDouble) - H_in.to(torch::kDouble).mean(0, true);
  const auto Gb = G_in.to(torch::kDouble) - G_in.to(torch::kDouble).mean(0, true);
  const double N = static_cast<double>(H.size(0));
  std::map<std::string, double> m;

  // K = Gb Gb^T shares its nonzero eigenvalues with the singular values of Gb, squared.
  const auto svd_g = torch::linalg_svd(Gb, /*full_matrices=*/false);
  const auto UG = std::get<0>(svd_g);
  const auto lam = std::get<1>(svd_g).pow(2);
  const auto svd_h = torch::linalg_svd(H, /*full_matrices=*/false);
  const auto UH = std::get<0>(svd_h);
  // Exact prototypes of a hidden Markov model span at most states - 1 directions, one-hot ones
  // at most V - 1: singular vectors past a matrix's numerical rank are round-off, so the
  // subspace metrics use only the first rank of them.
  const int64_t kG =
      numerical_rank(std::get<1>(svd_g), N, Gb.size(1), machine_epsilon(G_in.scalar_type()));
  const int64_t kH =
      numerical_rank(std::get<1>(svd_h), N, H.size(1), machine_epsilon(H_in.scalar_type()));
  m[prefix + "g_rank"] = static_cast<double>(kG);
  const double lam_sum = lam.sum().item<double>();
  if (lam_sum > 0) {
    const auto p = (lam / lam_sum).clamp_min(1e-300);
    m[prefix + "k_effective_rank"] = std::exp(-(p * p.log()).sum().item<double>());
    // K's top eigenvalues per position (the covariance of the prototypes: free of N), and the
    // share of K's trace the top r hold.
    for (int64_t i = 0; i < std::min<int64_t>(8, lam.size(0)); ++i)
      m[prefix + stoch::str("k_eig_", i + 1)] = lam[i].item<double>() / N;
    for (int64_t r : {8, 16, 32, 64})
      if (r <= lam.size(0))
        m[prefix + stoch::str("k_share_r", r)] = lam.slice(0, 0, r).sum().item<double>() / lam_sum;
  }

  // Whitening: Hw = H (Sigma + eps I)^(-1/2), Sigma = H^T H / N, via its eigendecomposition.
  const int64_t d = H.size(1);
  const auto eig =
      torch::linalg_eigh(torch::matmul(H.t(), H) / N + eps * torch::eye(d, torch::kDouble));
  const auto inv_sqrt =
      torch::matmul(std::get<1>(eig) * std::get<0>(eig).rsqrt(), std::get<1>(eig).t());
  const auto Hw = torch::matmul(H, inv_sqrt);
  // Top eigenvalues of Hw^T K Hw / N = singular values of Hw^T Gb / sqrt(N), squared.
  const auto mu = torch::linalg_svdvals(torch::matmul(Hw.t(), Gb) / std::sqrt(N)).pow(2);

  // Canonical correlations: the cosines of the principal angles between span(H) and span(Gb),
  // from orthonormal bases of the two spans.
  const auto cca =
      torch::linalg_svdvals(torch::matmul(UH.slice(1, 0, kH).t(), UG.slice(1, 0, kG))).clamp(0, 1);

  const int64_t rmax = std::min<int64_t>({d, Gb.size(1), lam.size(0), mu.size(0)});
  for (int64_t r : {8, 16, 32, 64}) {
    if (r > rmax) break;
    const double top_lam = lam.slice(0, 0, r).sum().item<double>();
    if (top_lam > 0)
      m[prefix + stoch::str("kyfan_r", r)] = mu.slice(0, 0, r).sum().item<double>() / top_lam;
    // Past a rank, the span itself: the top-r subspaces hold min(r, rank) real directions.
    const int64_t rh = std::min(r, kH), rg = std::min(r, kG);
    if (rh > 0 && rg > 0) {
      const auto ov = torch::matmul(UH.slice(1, 0, rh).t(), UG.slice(1, 0, rg));
      m[prefix + stoch::str("overlap_r", r)] =
          ov.pow(2).sum().item<double>() / static_cast<double>(std::min(rh, rg));
    }
    if (cca.size(0) > 0)
      m[prefix + stoch::str("cca_r", r)] =
          cca.slice(0, 0, std::min<int64_t>(r, cca.size(0))).mean().item<double>();
  }

  const double hg = torch::matmul(H.t(), Gb).pow(2).sum().item<double>();
  const double hh = torch::matmul(H.t(), H).norm().item<double>();
  const double gg = torch::matmul(Gb.t(), Gb).norm().item<double>();
  if (hh > 0 && gg > 0) m[prefix + "cka"] = hg / (hh * gg);
  return m;
}

}  // namespace stoch::hooks
