#include "models/batched_attention.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace stoch::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [T, T]: 0 on and below the diagonal, -inf above; added to the scores inside the first
// product (baddbmm), so masking costs no pass of its own.
torch::Tensor causal_bias(int64_t T, const torch::TensorOptions& options) {
  return torch::full({T, T}, -std::numeric_limits<double>::infinity(), options).triu(1);
}

struct BatchedCausalAttention : public torch::autograd::Function<BatchedCausalAttention> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double dropout_p) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    // The scale goes on q (T x D) rather than on the scores (T x T); reshape copies only what
    // is not already one [B*H, T, D] block (q, k, v arrive as strided views of one qkv product).
    const auto qs = (q * scale).reshape({B * H, T, D});
    const auto kc = k.reshape({B * H, T, D});
    const auto vc = v.reshape({B * H, T, D});
    const auto scores = at::baddbmm(causal_bias(T, q.options()), qs, kc.transpose(1, 2));
    const auto p = at::_softmax(scores, -1, /*half_to_float=*/false);
    torch::Tensor keep;  // the dropout mask, already divided by the keep probability
    if (dropout_p > 0)
      keep = torch::empty_like(p).bernoulli_(1.0 - dropout_p).div_(1.0 - dropout_p);
    const auto out = at::bmm(keep.defined() ? p * keep : p, vc);
    ctx->save_for_backward({qs, kc, vc, p, keep});
    ctx->saved_data["scale"] = scale;
    return out.view({B, H, T, D});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &qs = saved[0], &kc = saved[1], &vc = saved[2], &p = saved[3], &keep = saved[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto sizes = grad_outputs[0].sizes();
    const auto g = grad_outputs[0].reshape(qs.sizes());
    // out = P' v with P' = P * keep: dv = P'^T g, dP = (g v^T) * keep, then through softmax.
    const auto dv = at::bmm((keep.defined() ? p * keep : p).transpose(1, 2), g);
    auto dp = at::bmm(g, vc.transpose(1, 2));
    if (keep.defined()) dp.mul_(keep);
    // Masked entries have P = 0, so their score gradient is exactly 0: no mask needed here.
    const auto ds = at::_softmax_backward_data(dp, p, -1, p.scalar_type());
    // scores = (q * scale) k^T: dq = scale * ds k, dk = ds^T (q * scale).
    const auto dq = at::bmm(ds, kc).mul_(scale);
    const auto dk = at::bmm(ds.transpose(1, 2), qs);
    return {dq.view(sizes), dk.view(sizes), dv.view(sizes), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor batched_causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, double dropout_p) {
  return BatchedCausalAttention::apply(q, k, v, dropout_p);
}

}  // namespace stoch::models
