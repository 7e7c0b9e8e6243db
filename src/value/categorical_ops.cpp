#include "value/categorical_ops.h"

#include <torch/torch.h>

#include "value/categorical_rows.h"
#include "value/chosen_heads.h"

namespace stoch::value {
namespace {

bool host_float(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat;
}

// chosen_cross_entropy_rows, or its mean, as one node: the forward writes each row's gradient,
// the backward scales it into the chosen heads of a zero [B, A, m].
struct ChosenCrossEntropyFn : public torch::autograd::Function<ChosenCrossEntropyFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& actions, const torch::Tensor& target,
                               bool mean) {
    const int64_t B = logits.size(0), A = logits.size(1), m = logits.size(2);
    const auto lc = logits.contiguous();
    const auto tc = target.contiguous();
    const auto ac = actions.contiguous();
    const auto index = chosen_heads(ac.data_ptr<int64_t>(), B, A, "chosen_cross_entropy");
    auto loss = torch::empty({B}, lc.options());
    auto grad_rows = torch::empty({B, m}, lc.options());
    cross_entropy_rows(lc.data_ptr<float>(), index.data(), B, m, tc.data_ptr<float>(),
                       loss.data_ptr<float>(), grad_rows.data_ptr<float>());
    ctx->save_for_backward({ac, grad_rows});
    ctx->saved_data["A"] = A;
    ctx->saved_data["mean"] = mean;
    if (!mean) return loss;
    double total = 0.0;
    const float* lp = loss.data_ptr<float>();
    for (int64_t i = 0; i < B; ++i) total += lp[i];
    return torch::full({}, total / static_cast<double>(B), lc.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& actions = saved[0];
    const auto& grad_rows = saved[1];
    const int64_t A = ctx->saved_data["A"].toInt();
    // The upstream gradient per row: one scalar over B for the mean.
    const auto up = grad_outputs[0].to(torch::kFloat).contiguous();
    const float* upp = up.data_ptr<float>();
    if (ctx->saved_data["mean"].toBool()) {
      const float scale = upp[0] * (1.0f / static_cast<float>(grad_rows.size(0)));
      return {scatter_to_chosen(actions, grad_rows, A, &scale, 0), {}, {}, {}};
    }
    return {scatter_to_chosen(actions, grad_rows, A, upp, 1), {}, {}, {}};
  }
};

// Whether chosen_cross_entropy's arguments fit the host node; otherwise operators run.
bool host_node(const torch::Tensor& logits, const torch::Tensor& actions,
               const torch::Tensor& target) {
  TORCH_CHECK(logits.dim() == 3 && actions.dim() == 1 && actions.size(0) == logits.size(0) &&
                  target.dim() == 2 && target.size(0) == logits.size(0) &&
                  target.size(1) == logits.size(2),
              "chosen_cross_entropy: logits ", logits.sizes(), ", actions ", actions.sizes(),
              " and target ", target.sizes(), " do not fit [B, A, m], [B], [B, m]");
  // The loops read at least one bin per row.
  return logits.size(2) > 0 && host_float(logits) && host_float(target) &&
         !target.requires_grad() && actions.is_cpu() && actions.scalar_type() == torch::kLong;
}

torch::Tensor rows_by_operators(const torch::Tensor& logits, const torch::Tensor& actions,
                                const torch::Tensor& target) {
  const int64_t B = logits.size(0), m = logits.size(2);
  // float32 at least (bf16 heads under run.precision=bf16): in bf16 the target distribution and
  // log-softmax rounded to 2^-9, and the logged loss moved in steps of 2^-5.
  const auto type = torch::promote_types(
      torch::promote_types(logits.scalar_type(), target.scalar_type()), torch::kFloat32);
  const auto chosen =
      logits.gather(1, actions.view({B, 1, 1}).expand({B, 1, m})).squeeze(1).to(type);
  return -(target.to(type) * torch::log_softmax(chosen, -1)).sum(-1);
}

}  // namespace

torch::Tensor expectation(const torch::Tensor& logits, const torch::Tensor& support) {
  TORCH_CHECK(logits.dim() >= 1 && support.dim() == 1 && support.size(0) > 0 &&
                  logits.size(-1) == support.size(0),
              "expectation: logits ", logits.sizes(), " over a support of ", support.sizes());
  const bool differentiable = logits.requires_grad() && torch::GradMode::is_enabled();
  if (host_float(logits) && host_float(support) && !differentiable) {
    const auto lc = logits.contiguous();
    const auto sc = support.contiguous();
    const int64_t m = support.size(0);
    auto out = torch::empty(logits.sizes().slice(0, logits.dim() - 1), logits.options());
    expectation_rows(lc.data_ptr<float>(), out.numel(), m, sc.data_ptr<float>(),
                     out.data_ptr<float>());
    return out;
  }
  return torch::matmul(torch::softmax(logits, -1), support.to(logits.scalar_type()));
}

torch::Tensor softmax_bins(const torch::Tensor& logits) {
  torch::NoGradGuard no_grad;
  if (!host_float(logits) || logits.dim() < 1 || logits.size(-1) == 0)
    return torch::softmax(logits, -1, torch::promote_types(logits.scalar_type(), torch::kFloat32));
  const auto lc = logits.contiguous();
  const int64_t m = logits.size(-1);
  auto out = torch::empty_like(lc);
  softmax_rows(lc.data_ptr<float>(), lc.numel() / m, m, out.data_ptr<float>());
  return out;
}

torch::Tensor chosen_cross_entropy_rows(const torch::Tensor& logits, const torch::Tensor& actions,
                                        const torch::Tensor& target) {
  if (host_node(logits, actions, target))
    return ChosenCrossEntropyFn::apply(logits, actions, target, /*mean=*/false);
  return rows_by_operators(logits, actions, target);
}

torch::Tensor chosen_cross_entropy(const torch::Tensor& logits, const torch::Tensor& actions,
                                   const torch::Tensor& target) {
  if (host_node(logits, actions, target))
    return ChosenCrossEntropyFn::apply(logits, actions, target, /*mean=*/true);
  return rows_by_operators(logits, actions, target).mean();
}

}  // namespace stoch::value
