// The value head's loss, picked by `value.loss`: scalar regression (mse, huber) or a categorical
// head trained against a target distribution (two_hot, hl_gauss, c51, one_hot) or, as an ablation,
// with MSE on its expectation. How they compare: docs/results/nonstationary.md and
// docs/results/rl.md.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config_schema.h"

namespace stoch::value {

// Names of the registered losses (the choices of `value.loss`).
std::vector<std::string> value_loss_names();
// `value.loss`'s doc: every registered loss with its own doc, so a new one documents itself.
const char* value_loss_doc();

struct ValueLossConfig {
  std::string loss = "hl_gauss";  // a registered ValueLossEntry (value_loss_names())
  int64_t num_bins = 101;
  double v_min = -10.0, v_max = 10.0;
  double sigma_ratio = 0.75;  // hl_gauss: sigma = sigma_ratio * bin width
  double huber_delta = 1.0;
  std::string value_transform = "none";  // squashing of targets before the loss, undone after
  std::string support = "fixed";         // fixed | auto | running (value/support.h)
  double support_k = 3.0;
  double support_rate = 0.01;

  // value_transform's canonical name: none, muzero or symlog ("false" and "true", the key's
  // spellings when it was a switch, still read from older runs' config.yaml).
  std::string transform() const {
    return value_transform == "true"    ? "muzero"
           : value_transform == "false" ? "none"
                                        : value_transform;
  }

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("loss", loss, value_loss_doc(), Spec().one_of(value_loss_names()));
    v("num_bins", num_bins, "categorical head: number of bins (atoms for c51)", Spec().at_least(2));
    v("v_min", v_min,
      "categorical head: low end of the support, in return units (with value_transform the bins "
      "are uniform in the squashed space between the images of v_min and v_max)");
    v("v_max", v_max, "categorical head: high end of the support, in return units (> v_min)");
    v("sigma_ratio", sigma_ratio, "hl_gauss: target standard deviation in bin widths",
      Spec().above(0));
    v("huber_delta", huber_delta, "huber: where the loss turns from quadratic to linear",
      Spec().above(0));
    v("value_transform", value_transform,
      "squash targets before the loss and unsquash read-backs: none; muzero, MuZero's "
      "h(x) = sign(x)(sqrt(|x|+1)-1) + 0.001x; symlog, sign(x) log(1+|x|) (false and true: "
      "older spellings of none and muzero)",
      Spec().one_of({"none", "muzero", "symlog", "false", "true"}));
    v("support", support,
      "categorical head's bins: fixed, on [v_min, v_max]; auto, on the bounds the task proves "
      "(dqn: the discounted return's reach from the game's reward range and dqn.gamma, which a "
      "time limit does not shorten; value_regression: the targets' range), printed at the start; "
      "running, "
      "following the targets' moving mean +- support_k std, moved between updates only and "
      "starting at [v_min, v_max]",
      Spec().one_of({"fixed", "auto", "running"}));
    v("support_k", support_k, "support running: standard deviations each side of the mean",
      Spec().above(0));
    v("support_rate", support_rate,
      "support running: the moving averages' weight on each batch of targets",
      Spec().above(0).at_most(1));
  }
};

// One object per run. A categorical loss holds its support as tensors; `to` moves them.
class ValueLoss {
 public:
  virtual ~ValueLoss() = default;
  virtual int64_t head_outputs() const = 0;  // 1 for scalar losses, num_bins otherwise
  // head_out [..., head_outputs()], target [...] (any float dtype) -> loss per target [...].
  virtual torch::Tensor per_sample(const torch::Tensor& head_out,
                                   const torch::Tensor& target) const = 0;
  // The mean of per_sample.
  torch::Tensor loss(const torch::Tensor& head_out, const torch::Tensor& target) const {
    return per_sample(head_out, target).mean();
  }
  // The mean loss of each row's chosen head: head_out [B, A, head_outputs()], actions [B]
  // (int64), target [B]. Equal to gathering the chosen heads and taking `loss`; on the CPU it
  // runs as one autograd node (but for mse_on_expectation), where a DQN update's gather, loss
  // and mean nodes cost more than their arithmetic.
  virtual torch::Tensor chosen_loss(const torch::Tensor& head_out, const torch::Tensor& actions,
                                    const torch::Tensor& target) const;
  // The same per row, [B]: gathering the chosen heads and taking `per_sample` (prioritised replay
  // weighs the rows). One node on the CPU for the cross-entropy losses.
  virtual torch::Tensor chosen_rows(const torch::Tensor& head_out, const torch::Tensor& actions,
                                    const torch::Tensor& target) const;
  // head_out [..., head_outputs()] -> [...]: the head itself for scalar losses, the expectation
  // sum softmax * support for categorical ones (then h^-1). For acting, bootstrapping and logging:
  // no gradient flows through it.
  virtual torch::Tensor value(const torch::Tensor& head_out) const = 0;
  // The greedy action for one observation's heads on the host, `heads` [actions,
  // head_outputs()]: the action of the largest value, the first on ties, as value's argmax
  // (but for ties h^-1's rounding would make). What acting calls every environment step.
  virtual int greedy_on_host(const float* heads, int64_t actions) const = 0;
  virtual bool categorical() const = 0;
  // The values the categorical head's bins stand for (bin centres; c51's atoms), in the
  // squashed space when value_transform is not none; undefined for scalar heads.
  virtual torch::Tensor support() const { return {}; }
  // Moves the categorical head's bins to [v_min, v_max] (return units), keeping their number;
  // the logits stay as they are. Nothing for scalar heads.
  virtual void set_bounds(double v_min, double v_max) {}
  virtual void to(const torch::Device& d) = 0;
};

// Throws InputError for an unknown loss name or values no loss can use (v_min >= v_max,
// num_bins < 2, sigma_ratio <= 0, huber_delta <= 0, non-finite numbers).
std::unique_ptr<ValueLoss> make_value_loss(const ValueLossConfig& cfg);

// A registry entry: `registry<ValueLossEntry>().add("name", {...})` next to the loss's code.
struct ValueLossEntry {
  std::string doc;
  std::function<std::unique_ptr<ValueLoss>(const ValueLossConfig&)> make;
  // The head is a return distribution on fixed atoms: dqn projects the Bellman target onto them.
  bool distributional = false;
};

}  // namespace stoch::value
