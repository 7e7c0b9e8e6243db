// Hook "representation": health of a value network's features on the task's evaluation inputs
// (value_regression: the first of its training inputs, which are all it has):
//   diag/srank, diag/effective_rank   of the penultimate features (the head's input)
//   diag/dormant, diag/dormant_layer<k>  share of dormant hidden units (all layers, each layer)
#include <torch/torch.h>

#include "core/strings.h"
#include "hooks/hook.h"
#include "hooks/rank.h"

namespace stoch::hooks {
namespace {

struct RepresentationParams : config::VisitableOf<RepresentationParams> {
  double delta = 0.01;
  double tau = 0.025;
  int64_t max_inputs = 2048;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("delta", delta, "srank keeps singular values up to (1 - delta) of their sum",
      Spec().above(0).at_most(1));
    v("tau", tau, "a unit is dormant when its mean |activation| / the layer's mean is at most tau",
      Spec().at_least(0));
    v("max_inputs", max_inputs,
      "inputs to measure on, the first of the task's evaluation inputs (value_regression has no "
      "held-out inputs: its training inputs)",
      Spec().at_least(1));
  }
};

class RepresentationHook : public Hook {
 public:
  explicit RepresentationHook(const RepresentationParams& p) : p_(p) {}

  Metrics run(const HookContext& ctx) override {
    const ValueView& v = *ctx.value;
    const auto x = v.eval_inputs.slice(0, 0, std::min(p_.max_inputs, v.eval_inputs.size(0)));
    // Ranks of what the head reads (a CNN's whole flattened map, signed); dormancy per unit.
    const auto features = v.net->features(x);
    Metrics m;
    m["diag/srank"] = static_cast<double>(srank(features, p_.delta));
    m["diag/effective_rank"] = effective_rank(features);
    const auto layers = v.net->hidden_units(x);
    double dormant = 0, units = 0;
    for (size_t k = 0; k < layers.size(); ++k) {
      const double share = dormant_share(layers[k], p_.tau);
      m[stoch::str("diag/dormant_layer", k)] = share;
      dormant += share * static_cast<double>(layers[k].size(1));
      units += static_cast<double>(layers[k].size(1));
    }
    m["diag/dormant"] = dormant / units;
    return m;
  }

 private:
  RepresentationParams p_;
};

const bool registered = register_hook<RepresentationParams, RepresentationHook>(
    "representation", "feature rank (srank, effective rank) and dormant units of a value network",
    Needs::kValue);

}  // namespace
}  // namespace stoch::hooks
