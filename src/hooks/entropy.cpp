// Hook "entropy": how the model's predictive distributions compare with what they predict.
// On the held-out windows, from logits z and p = softmax(z) over the model's whole output (a
// vocabulary padded past the data's included, as in val/loss, so diag/nll is val/loss there):
//   diag/nll          mean -log p(x_{t+1})
//   diag/entropy      mean H(p) = logsumexp(z) - sum p z
//   diag/calibration_gap  nll - entropy (positive: over-confident on average)
//   diag/align, diag/uniformity   the split nll = -z[x_{t+1}] + logsumexp(z)
//   diag/nll_pos<k>, diag/entropy_pos<k>   the same over position buckets (early to late)
//   diag/nll_freq<k>  nll of targets grouped by how often the token occurs (0: most frequent);
//                     the tokens that occur are ranked by count (ties by id) and cut into
//                     buckets of equal numbers of them
// With a source that knows its exact conditionals q, also
//   diag/true_entropy mean H(q), and diag/kl mean KL(q || p): nll = true_entropy + kl + noise.
#include <torch/torch.h>

#include <cmath>

#include "core/strings.h"
#include "hooks/hook.h"

namespace stoch::hooks {
namespace {

struct EntropyParams : config::VisitableOf<EntropyParams> {
  int64_t position_buckets = 4;
  int64_t frequency_buckets = 4;
  int64_t max_windows = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("position_buckets", position_buckets, "groups of positions for the per-position breakdown",
      Spec().at_least(1));
    v("frequency_buckets", frequency_buckets,
      "groups of tokens by frequency for the per-frequency breakdown", Spec().at_least(1));
    v("max_windows", max_windows, "held-out windows to use; 0 uses all of the evaluation set",
      Spec().at_least(0));
  }
};

class EntropyHook : public Hook {
 public:
  explicit EntropyHook(const EntropyParams& p) : p_(p) {}

  Metrics run(const HookContext& ctx) override {
    const LmView& lm = *ctx.lm;
    auto windows = lm.eval_windows;
    if (p_.max_windows > 0 && p_.max_windows < windows.size(0))
      windows = windows.slice(0, 0, p_.max_windows);
    const int64_t T = windows.size(1) - 1;
    const auto x = windows.slice(1, 0, T), y = windows.slice(1, 1, T + 1);

    // Per-position values, [N, T], in float64 so means over many positions stay exact.
    const auto z = lm.model->forward(x).to(torch::kDouble);
    const int64_t V = lm.source ? lm.source->vocab_size() : z.size(-1);
    const auto lse = torch::logsumexp(z, -1);
    const auto logp = z - lse.unsqueeze(-1);
    const auto p = logp.exp();
    const auto zy = z.gather(-1, y.unsqueeze(-1)).squeeze(-1);
    const auto nll = lse - zy;
    const auto entropy = lse - (p * z).sum(-1);

    Metrics m;
    m["diag/nll"] = nll.mean().item<double>();
    m["diag/entropy"] = entropy.mean().item<double>();
    m["diag/calibration_gap"] = m["diag/nll"] - m["diag/entropy"];
    m["diag/align"] = (-zy).mean().item<double>();
    m["diag/uniformity"] = lse.mean().item<double>();

    for (int64_t b = 0; b < p_.position_buckets; ++b) {
      const int64_t lo = b * T / p_.position_buckets, hi = (b + 1) * T / p_.position_buckets;
      if (hi <= lo) continue;
      m[stoch::str("diag/nll_pos", b)] = nll.slice(1, lo, hi).mean().item<double>();
      m[stoch::str("diag/entropy_pos", b)] = entropy.slice(1, lo, hi).mean().item<double>();
    }

    // Token frequency ranks from the targets themselves: bucket 0 holds the most frequent tokens.
    // Ranked among the tokens that occur: cut over the whole vocabulary, a large one (GPT-2's)
    // put every target in bucket 0. The stable sort breaks ties by token id.
    const auto counts = torch::bincount(y.reshape({-1}).cpu(), {}, V);
    const auto order = std::get<1>(counts.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    auto rank = torch::empty_like(order);
    rank.index_put_({order}, torch::arange(V, order.options()));
    const int64_t occurring = counts.gt(0).sum().item<int64_t>();
    // Floor division: `/` on integer tensors divides exactly, and the buckets then matched only
    // ranks whose quotient was whole.
    const auto bucket = (rank * p_.frequency_buckets)
                            .div(occurring, /*rounding_mode=*/"floor")
                            .to(y.device())
                            .index_select(0, y.reshape({-1}));
    const auto flat_nll = nll.reshape({-1});
    for (int64_t b = 0; b < p_.frequency_buckets; ++b) {
      const auto mask = bucket == b;
      if (mask.sum().item<int64_t>() == 0) continue;
      m[stoch::str("diag/nll_freq", b)] = flat_nll.masked_select(mask).mean().item<double>();
    }

    add_exact(lm, windows, logp.slice(-1, 0, V), m);
    return m;
  }

 private:
  static void add_exact(const LmView& lm, const torch::Tensor& windows, const torch::Tensor& logp,
                        Metrics& m) {
    auto q = exact_target_conditionals(lm, windows);
    if (!q.defined()) return;
    q = q.to(logp.device());
    const auto logq = torch::log(q.clamp_min(1e-300));
    m["diag/true_entropy"] = (-(q * logq).sum(-1)).mean().item<double>();
    // p's mass on padded entries makes it sum to less than 1 over the data's tokens; the sum stays
    // >= 0 and nll = true_entropy + kl still holds in expectation.
    m["diag/kl"] = (q * (logq - logp)).sum(-1).mean().item<double>();
  }

  EntropyParams p_;
};

const bool registered = register_hook<EntropyParams, EntropyHook>(
    "entropy", "predictive entropy, calibration and (with exact data) KL to the truth", Needs::kLm);

}  // namespace
}  // namespace stoch::hooks
