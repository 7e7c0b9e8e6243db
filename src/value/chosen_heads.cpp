#include "value/chosen_heads.h"

#include <torch/torch.h>

namespace stoch::value {

std::vector<int64_t> chosen_heads(const int64_t* actions, int64_t B, int64_t A, const char* who) {
  std::vector<int64_t> index(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    TORCH_CHECK(actions[i] >= 0 && actions[i] < A, who, ": action ", actions[i], " outside [0, ", A,
                ")");
    index[static_cast<size_t>(i)] = i * A + actions[i];
  }
  return index;
}

torch::Tensor scatter_to_chosen(const torch::Tensor& actions, const torch::Tensor& rows, int64_t A,
                                const float* scale, int64_t scale_stride) {
  const int64_t B = rows.size(0), K = rows.size(1);
  auto grad = torch::zeros({B, A, K}, rows.options());
  float* gp = grad.data_ptr<float>();
  const float* rp = rows.data_ptr<float>();
  const int64_t* ap = actions.data_ptr<int64_t>();
  for (int64_t i = 0; i < B; ++i) {
    const float s = scale[i * scale_stride];
    for (int64_t j = 0; j < K; ++j) gp[(i * A + ap[i]) * K + j] = rp[i * K + j] * s;
  }
  return grad;
}

}  // namespace stoch::value
