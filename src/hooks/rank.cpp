#include "hooks/rank.h"

#include <torch/torch.h>

namespace stoch::hooks {
namespace {

at::Tensor singular_values(const at::Tensor& features) {
  return torch::linalg_svdvals(features.to(torch::kDouble).cpu());
}

}  // namespace

int64_t srank(const at::Tensor& features, double delta) {
  const auto s = singular_values(features);
  const double total = s.sum().item<double>();
  if (total <= 0) return 0;
  const auto cum = s.cumsum(0) / total;
  // Count the prefixes that still miss (1 - delta) of the sum; the next one reaches it.
  return std::min<int64_t>((cum < 1.0 - delta).sum().item<int64_t>() + 1, s.size(0));
}

double effective_rank(const at::Tensor& features) {
  const auto s = singular_values(features);
  const double total = s.sum().item<double>();
  if (total <= 0) return 0.0;
  const auto p = s / total;
  const auto nz = p.masked_select(p > 0);
  return std::exp(-(nz * nz.log()).sum().item<double>());
}

double dormant_share(const at::Tensor& activations, double tau) {
  const auto score = activations.abs().to(torch::kDouble).mean(0);
  const double layer_mean = score.mean().item<double>();
  if (layer_mean <= 0) return 1.0;  // a layer silent everywhere is all dormant
  return (score / layer_mean <= tau).to(torch::kDouble).mean().item<double>();
}

}  // namespace stoch::hooks
