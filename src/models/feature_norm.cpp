#include "models/feature_norm.h"

#include <torch/torch.h>

namespace stoch::models {

namespace {
// PyTorch's LayerNorm default; the same for RMSNorm so that the two differ only in centring.
constexpr double kEps = 1e-5;
}  // namespace

FeatureNormImpl::FeatureNormImpl(const std::string& kind, int64_t units) : rms_(kind == "rms") {
  weight_ = register_parameter("weight", torch::ones({units}));
  if (!rms_) bias_ = register_parameter("bias", torch::zeros({units}));
}

torch::Tensor FeatureNormImpl::forward(const torch::Tensor& x) {
  std::vector<int64_t> dims(x.dim() - 1);
  for (int64_t d = 1; d < x.dim(); ++d) dims[d - 1] = d;
  // The affine parameters broadcast over any positions after the unit (channel) dimension.
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = weight_.size(0);
  torch::Tensor y;
  if (rms_) {
    y = x * torch::rsqrt(x.square().mean(dims, /*keepdim=*/true) + kEps);
    return y * weight_.view(shape);
  }
  const auto mean = x.mean(dims, /*keepdim=*/true);
  const auto centred = x - mean;
  y = centred * torch::rsqrt(centred.square().mean(dims, /*keepdim=*/true) + kEps);
  return y * weight_.view(shape) + bias_.view(shape);
}

}  // namespace stoch::models
