#include "rl/dqn/bellman_target.h"

#include <torch/torch.h>

#include "value/categorical_ops.h"
#include "value/targets.h"
#include "value/value_loss.h"

namespace stoch::rl {

BellmanTarget bellman_target(const value::ValueLoss& loss, const torch::Tensor& next_target,
                             const torch::Tensor& next_online, const torch::Tensor& returns,
                             const torch::Tensor& discounts, bool distributional) {
  torch::NoGradGuard no_grad;  // not inference mode: the loss saves y for its backward
  const int64_t B = next_target.size(0), m = next_target.size(2);
  const auto q_next = loss.value(next_target);
  const auto best = next_online.defined() ? loss.value(next_online).argmax(1) : q_next.argmax(1);
  BellmanTarget out;
  // The scalar target: what scalar heads and two_hot/hl_gauss regress to or classify, and
  // for c51 the logged summary.
  out.scalar = returns + discounts * q_next.gather(1, best.view({B, 1})).squeeze(1);
  if (distributional) {
    const auto next_logits =
        next_target.gather(1, best.view({B, 1, 1}).expand({B, 1, m})).squeeze(1);
    // In the head's precision (float32 on the CPU): the projection's rounding is far below the
    // bootstrap noise, and float64 made c51 updates a third slower.
    out.distribution =
        value::c51_project(value::softmax_bins(next_logits), returns, discounts, loss.support());
  }
  return out;
}

}  // namespace stoch::rl
