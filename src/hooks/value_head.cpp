// Hook "value_head": what the value head predicts on the task's evaluation inputs
// (value_regression: the first of its training inputs, which are all it has):
//   diag/value_mean, diag/value_gap (mean |read-back value - target|, when targets are known)
//   diag/head_entropy  mean entropy of the categorical head's softmax (categorical losses only)
#include <torch/torch.h>

#include "hooks/hook.h"

namespace stoch::hooks {
namespace {

struct ValueHeadParams : config::VisitableOf<ValueHeadParams> {
  int64_t max_inputs = 2048;

  template <class V>
  void visit(V& v) {
    v("max_inputs", max_inputs,
      "inputs to measure on, the first of the task's evaluation inputs (value_regression has no "
      "held-out inputs: its training inputs)",
      config::Spec().at_least(1));
  }
};

class ValueHeadHook : public Hook {
 public:
  explicit ValueHeadHook(const ValueHeadParams& p) : p_(p) {}

  Metrics run(const HookContext& ctx) override {
    const ValueView& v = *ctx.value;
    const int64_t n = std::min(p_.max_inputs, v.eval_inputs.size(0));
    // [n, heads, outputs]: one head per action for Q-networks, a single head otherwise.
    const auto out =
        v.net->forward(v.eval_inputs.slice(0, 0, n)).reshape({n, -1, v.loss->head_outputs()});
    auto value = v.loss->value(out).to(torch::kDouble);  // [n, heads]
    if (value.size(1) == 1) value = value.squeeze(1);
    Metrics m;
    m["diag/value_mean"] = value.mean().item<double>();
    if (v.eval_targets) {
      const auto y = v.eval_targets(ctx.step).slice(0, 0, n).to(torch::kDouble);
      m["diag/value_gap"] = (value - y).abs().mean().item<double>();
    }
    if (v.loss->categorical()) {
      const auto logp = torch::log_softmax(out.to(torch::kDouble), -1);
      m["diag/head_entropy"] = (-(logp.exp() * logp).sum(-1)).mean().item<double>();
    }
    return m;
  }

 private:
  ValueHeadParams p_;
};

const bool registered = register_hook<ValueHeadParams, ValueHeadHook>(
    "value_head", "read-back values, their gap to the targets, and the head's entropy",
    Needs::kValue);

}  // namespace
}  // namespace stoch::hooks
