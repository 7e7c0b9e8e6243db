// Hook "norms": L2 norms of the weights and of the last step's gradients, per layer group (a
// parameter's name without its last component: "torso.layers.0", "blocks.1.attn.qkv"), as
// diag/weight_norm/<group> and diag/grad_norm/<group>. The gradients are those the optimiser
// used: after train.grad_clip scaled them, where the train line's grad_norm is before. Works on
// any model.
#include <torch/torch.h>

#include <cmath>

#include "core/log.h"
#include "core/strings.h"
#include "hooks/hook.h"

namespace stoch::hooks {
namespace {

struct NormsParams : config::VisitableOf<NormsParams> {
  template <class V>
  void visit(V& v) {
    (void)v;
  }
};

class NormsHook : public Hook {
 public:
  explicit NormsHook(const NormsParams&) {}
  Metrics run(const HookContext& ctx) override {
    struct Sums {
      double weights = 0, grads = 0;
      bool has_grad = false;
    };
    std::map<std::string, Sums> groups;
    for (const auto& item : ctx.model->named_parameters()) {
      const std::string& name = item.key();
      const auto dot = name.rfind('.');
      auto& g = groups[dot == std::string::npos ? name : name.substr(0, dot)];
      g.weights += item.value().to(torch::kDouble).pow(2).sum().item<double>();
      if (ctx.grad_squares) {
        if (const auto it = ctx.grad_squares->find(name); it != ctx.grad_squares->end()) {
          g.grads += it->second;
          g.has_grad = true;
        }
      } else if (item.value().grad().defined()) {
        g.grads += item.value().grad().to(torch::kDouble).pow(2).sum().item<double>();
        g.has_grad = true;
      }
    }
    Metrics m;
    bool any_grad = false;
    for (const auto& [group, g] : groups) {
      m["diag/weight_norm/" + group] = std::sqrt(g.weights);
      // Before the first step (the at-initialisation run) there is no gradient to measure.
      if (g.has_grad) m["diag/grad_norm/" + group] = std::sqrt(g.grads);
      any_grad = any_grad || g.has_grad;
    }
    // After a step, none: the parameters train nothing (all frozen). Said once, rather than
    // the metrics going missing unsaid.
    if (!any_grad && ctx.step > 0 && !warned_) {
      log::warn(
          stoch::str("hook norms: no gradients at step ", ctx.step, "; logging weight norms only"));
      warned_ = true;
    }
    return m;
  }

 private:
  bool warned_ = false;
};

const bool registered = register_hook<NormsParams, NormsHook>(
    "norms", "weight and gradient norms per layer group", Needs::kAny);

}  // namespace
}  // namespace stoch::hooks
