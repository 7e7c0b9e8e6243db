#include "models/chunked_ce.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace stoch::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  // grads: whether a backward can follow (decided by the caller, where grad mode is known).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               const torch::Tensor& targets, int64_t chunk_rows, bool grads) {
    const auto type = h.device().type();
    const auto dt = at::autocast::is_autocast_enabled(type) ? at::autocast::get_autocast_dtype(type)
                                                            : h.scalar_type();
    const int64_t N = h.size(0);
    const auto wc = w.to(dt);
    // float32 for softmax and sums (float64 inputs stay float64).
    const auto acc = h.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const auto f32 = h.options().dtype(acc);
    auto loss = torch::zeros({}, f32);
    torch::Tensor grad_h, grad_w;
    if (grads) {
      grad_h = torch::empty_like(h);
      grad_w = torch::zeros(w.sizes(), f32);
    }
    for (int64_t r0 = 0; r0 < N; r0 += chunk_rows) {
      const int64_t r1 = std::min(N, r0 + chunk_rows);
      const auto hc = h.slice(0, r0, r1).to(dt);
      const auto tc = targets.slice(0, r0, r1).unsqueeze(1);
      auto logits = at::mm(hc, wc.t()).to(acc);
      const auto lse = logits.logsumexp(1, /*keepdim=*/true);
      loss += (lse - logits.gather(1, tc)).sum();
      if (!grads) continue;
      // d(mean CE)/d(logits) = (softmax - onehot) / N, built in place of the logits.
      auto p = logits.sub_(lse).exp_();
      p.scatter_add_(1, tc, torch::full({r1 - r0, 1}, -1.0, f32));
      p.div_(static_cast<double>(N));
      const auto pd = p.to(dt);
      grad_h.slice(0, r0, r1).copy_(at::mm(pd, wc));
      grad_w.add_(at::mm(pd.t(), hc));
    }
    if (grads) ctx->save_for_backward({grad_h, grad_w});
    return loss / static_cast<double>(N);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grad_outputs[0];
    // h, w, then the three non-differentiable arguments.
    return {saved[0] * g.to(saved[0].scalar_type()), (saved[1] * g).to(saved[1].scalar_type()),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor chunked_cross_entropy(const torch::Tensor& h, const torch::Tensor& w,
                                    const torch::Tensor& targets, int64_t chunk_rows) {
  TORCH_CHECK(h.dim() == 2 && w.dim() == 2 && h.size(1) == w.size(1),
              "chunked_cross_entropy: h [N, d] and w [V, d], got ", h.sizes(), " and ", w.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == h.size(0) && chunk_rows > 0,
              "chunked_cross_entropy: targets [", h.size(0), "] and chunk_rows > 0");
  // Under no-grad (evaluation) the unembedding still requires grad: no gradients then.
  const bool grads = torch::GradMode::is_enabled() && (h.requires_grad() || w.requires_grad());
  return ChunkedCrossEntropy::apply(h, w, targets, chunk_rows, grads);
}

}  // namespace stoch::models
