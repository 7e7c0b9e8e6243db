// Diagnostics that watch training without touching it. A hook is one file plus one registry
// entry; the config lists them under `hooks:` as {name, every, ...its own parameters}. Hooks
// run under no-grad with the model in eval mode, draw no random numbers from the training
// streams, and log under diag/... (so a run with and without them has the same loss curve).
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/config_schema.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/torch/safetensors.h"
#include "data/token_source.h"
#include "models/language_model.h"
#include "models/value_net.h"
#include "value/value_loss.h"

namespace stoch::hooks {

// What a language-model hook may look at.
struct LmView {
  models::LanguageModelImpl* model = nullptr;
  const data::TokenSource* source = nullptr;  // for exact conditionals, when it knows them
  torch::Tensor eval_windows;                 // [N, context + 1] held-out token ids
};

// What a value-network hook may look at.
struct ValueView {
  models::ValueNetImpl* net = nullptr;
  const value::ValueLoss* loss = nullptr;
  torch::Tensor eval_inputs;                                // [N, ...input shape]
  std::function<torch::Tensor(int64_t step)> eval_targets;  // [N] targets at a step; may be empty
};

// The exact distribution of every target token of [n, L] windows, as [n, L - 1, V] float64 on
// the CPU (row t + 1 of the source's conditionals is the truth for the target at position t);
// undefined when the view has no source or the source does not know its conditionals.
torch::Tensor exact_target_conditionals(const LmView& lm, const torch::Tensor& windows);

struct HookContext {
  int64_t step = 0;
  torch::nn::Module* model = nullptr;
  const LmView* lm = nullptr;        // null unless the task is a language model
  const ValueView* value = nullptr;  // null unless the task trains a value network
  // Each parameter's sum of squared gradient elements, by name, where the gradients live outside
  // the parameters (dist.shard: gradients leaves each rank a share); null: read param.grad().
  const std::map<std::string, double>* grad_squares = nullptr;
};

class Hook {
 public:
  virtual ~Hook() = default;
  virtual Metrics run(const HookContext& ctx) = 0;
  // State that must survive a resume (probe weights, count tables); empty when stateless.
  virtual TensorList state() const { return {}; }
  virtual void load_state(const TensorList& saved) {}
};

// The model a hook reads: any, a language model (HookContext::lm) or a value network.
enum class Needs { kAny, kLm, kValue };

struct HookEntry {
  std::string doc;
  Needs needs = Needs::kAny;  // the task's model must offer this view
  std::function<std::shared_ptr<config::Visitable>()> make_params;
  std::function<std::unique_ptr<Hook>(const config::Visitable& params)> make;
  // Its saved state is a SurplusProbe that `stoch sample --speculative` drafts with.
  bool sampling_probe = false;
};

// Registers hook class H, configured by Params (the keys beside `name` and `every` in its
// `hooks` list item), under `name`,
// e.g. register_hook<EntropyParams, EntropyHook>("entropy", "...", Needs::kLm).
template <class Params, class H>
bool register_hook(const std::string& name, std::string doc, Needs needs,
                   bool sampling_probe = false) {
  return registry<HookEntry>().add(
      name, HookEntry{std::move(doc), needs, [] { return std::make_shared<Params>(); },
                      [](const config::Visitable& p) -> std::unique_ptr<Hook> {
                        return std::make_unique<H>(dynamic_cast<const Params&>(p));
                      },
                      sampling_probe});
}

// The checkpoint entry holding the state of the config's `index`-th hook.
inline std::string state_key(size_t index) {
  return "hook" + std::to_string(index);
}

// One entry of the `hooks:` list.
struct HookSpec {
  std::string name;
  int64_t every = 250;
  std::shared_ptr<config::Visitable> params;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("name", name, "which diagnostic",
      Spec().one_of(registry<HookEntry>().names()).must_be_given());
    v("every", every, "run every this many steps (and at the last step)",
      Spec().at_least(1).on_resume());
    if (!params) {
      // The Reader refuses an entry without one, naming its line; other visitors see parsed
      // entries only.
      if (name.empty()) throw InputError("hooks: every entry needs a name");
      params = registry<HookEntry>().get(name, "hooks.name").make_params();
    }
    params->accept(v);
  }
};

}  // namespace stoch::hooks
