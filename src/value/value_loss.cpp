#include "value/value_loss.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "value/categorical_ops.h"
#include "value/categorical_rows.h"
#include "value/chosen_heads.h"
#include "value/targets.h"

namespace stoch::value {
namespace {

// Losses and targets in float32 at least, float64 when either side is float64.
torch::ScalarType compute_type(const torch::Tensor& head_out, const torch::Tensor& target) {
  return torch::promote_types(torch::promote_types(head_out.scalar_type(), target.scalar_type()),
                              torch::kFloat32);
}

// value.value_transform: applied to targets before the loss, undone on every read-back.
class Squash {
 public:
  explicit Squash(const std::string& name) : name_(name) {}
  torch::Tensor operator()(const torch::Tensor& x) const {
    return name_ == "muzero" ? muzero_h(x) : name_ == "symlog" ? symlog(x) : x;
  }
  torch::Tensor inverse(const torch::Tensor& x) const {
    return name_ == "muzero" ? muzero_h_inverse(x) : name_ == "symlog" ? symexp(x) : x;
  }
  double operator()(double v) const {
    return (*this)(torch::tensor(v, torch::kFloat64)).item<double>();
  }

 private:
  std::string name_;
};

void check_head(const torch::Tensor& head_out, int64_t outputs) {
  TORCH_CHECK(head_out.dim() >= 1 && head_out.size(-1) == outputs, "value head: expected [..., ",
              outputs, "] outputs, got ", head_out.sizes());
}

void check_shapes(const torch::Tensor& head_out, const torch::Tensor& target, int64_t outputs) {
  check_head(head_out, outputs);
  TORCH_CHECK(head_out.sizes().slice(0, head_out.dim() - 1) == target.sizes(), "value loss: head ",
              head_out.sizes(), " does not match target ", target.sizes());
}

// ---- scalar head: regression on the (optionally transformed) target ----

// mean_i l(q[i, a_i] - y_i) with l the squared error or Huber's loss, as one node whose backward
// writes the few non-zero gradients straight into [B, A] (CPU float32, contiguous).
struct ChosenScalarLossFn : public torch::autograd::Function<ChosenScalarLossFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& actions, const torch::Tensor& y, bool huber,
                               double delta) {
    const int64_t B = q.size(0), A = q.size(1);
    TORCH_CHECK(actions.numel() == B && y.numel() == B, "chosen_loss: head ", q.sizes(), " with ",
                actions.numel(), " actions and ", y.numel(), " targets");
    const auto qc = q.contiguous();
    const float* qp = qc.data_ptr<float>();
    const auto heads = chosen_heads(actions.data_ptr<int64_t>(), B, A, "chosen_loss");
    const float* yp = y.data_ptr<float>();
    auto slope = torch::empty({B}, q.options());  // dl/dq of each row's chosen head, over B
    float* sp = slope.data_ptr<float>();
    const float d = static_cast<float>(delta), inv_b = 1.0f / static_cast<float>(B);
    double total = 0.0;
    for (int64_t i = 0; i < B; ++i) {
      const float e = qp[heads[static_cast<size_t>(i)]] - yp[i];
      if (!huber) {
        total += static_cast<double>(e) * e;
        sp[i] = 2.0f * e * inv_b;
      } else if (std::abs(e) < d) {
        total += 0.5 * static_cast<double>(e) * e;
        sp[i] = e * inv_b;
      } else {
        total += static_cast<double>(d) * (std::abs(e) - 0.5 * d);
        sp[i] = (e < 0 ? -d : d) * inv_b;
      }
    }
    ctx->save_for_backward({actions, slope});
    ctx->saved_data["A"] = A;
    return torch::full({}, total / static_cast<double>(B), q.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& actions = saved[0];
    const auto& slope = saved[1];
    const int64_t B = slope.size(0), A = ctx->saved_data["A"].toInt();
    const float up = grad_outputs[0].item<float>();
    return {scatter_to_chosen(actions, slope.view({B, 1}), A, &up, 0).view({B, A}), {}, {}, {}, {}};
  }
};

class ScalarLoss : public ValueLoss {
 public:
  ScalarLoss(const ValueLossConfig& cfg, bool huber)
      : huber_(huber), delta_(cfg.huber_delta), squash_(cfg.transform()) {}

  int64_t head_outputs() const override { return 1; }
  bool categorical() const override { return false; }
  void to(const torch::Device&) override {}

  torch::Tensor per_sample(const torch::Tensor& head_out,
                           const torch::Tensor& target) const override {
    check_shapes(head_out, target, 1);
    const auto ct = compute_type(head_out, target);
    const auto v = head_out.squeeze(-1).to(ct);
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = squash_(target).to(ct);
    }
    if (huber_) return torch::huber_loss(v, y, at::Reduction::None, delta_);
    return (v - y).pow(2);
  }

  torch::Tensor chosen_loss(const torch::Tensor& head_out, const torch::Tensor& actions,
                            const torch::Tensor& target) const override {
    const bool fast = head_out.is_cpu() && head_out.scalar_type() == torch::kFloat &&
                      target.scalar_type() == torch::kFloat && head_out.dim() == 3 &&
                      head_out.size(2) == 1 && actions.scalar_type() == torch::kLong;
    if (!fast) return ValueLoss::chosen_loss(head_out, actions, target);
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = squash_(target).contiguous();
    }
    return ChosenScalarLossFn::apply(head_out.reshape({head_out.size(0), head_out.size(1)}),
                                     actions.contiguous(), y, huber_, delta_);
  }

  int greedy_on_host(const float* heads, int64_t actions) const override {
    // h^-1 keeps the order: the largest head is the largest value.
    return static_cast<int>(std::max_element(heads, heads + actions) - heads);
  }

  torch::Tensor value(const torch::Tensor& head_out) const override {
    check_head(head_out, 1);
    torch::NoGradGuard no_grad;
    const auto v = head_out.detach().squeeze(-1);
    return squash_.inverse(v);
  }

 private:
  bool huber_;
  double delta_;
  Squash squash_;
};

const bool registered_mse = registry<ValueLossEntry>().add(
    "mse", {"scalar head, mean squared error (the baseline)",
            [](const ValueLossConfig& c) -> std::unique_ptr<ValueLoss> {
              return std::make_unique<ScalarLoss>(c, /*huber=*/false);
            }});

const bool registered_huber = registry<ValueLossEntry>().add(
    "huber", {"scalar head, Huber loss with huber_delta",
              [](const ValueLossConfig& c) -> std::unique_ptr<ValueLoss> {
                return std::make_unique<ScalarLoss>(c, /*huber=*/true);
              }});

// ---- categorical head: m logits, read back as the expectation over the support ----

enum class Target { kTwoHot, kHlGauss, kC51, kExpectationMse, kOneHot };

class CategoricalLoss : public ValueLoss {
 public:
  CategoricalLoss(const ValueLossConfig& cfg, Target kind)
      : kind_(kind), m_(cfg.num_bins), squash_(cfg.transform()), sigma_ratio_(cfg.sigma_ratio) {
    set_bounds(cfg.v_min, cfg.v_max);
  }

  void set_bounds(double v_min, double v_max) override {
    // With a transform the bins are uniform in the squashed space between the bounds' images.
    const double lo = squash_(v_min), hi = squash_(v_max);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    edges_ = bin_edges(lo, hi, m_, f64).to(device_);
    // C51's atoms include both ends; every other loss reads back over the bin centres.
    const auto support =
        kind_ == Target::kC51 ? torch::linspace(lo, hi, m_, f64) : bin_centres(lo, hi, m_, f64);
    const auto host = support.to(torch::kFloat).contiguous();
    support_host_.assign(host.data_ptr<float>(), host.data_ptr<float>() + m_);
    support_ = support.to(device_);
    support_f32_ = host.to(device_);
    sigma_ = sigma_ratio_ * (hi - lo) / static_cast<double>(m_);
  }

  int64_t head_outputs() const override { return m_; }
  bool categorical() const override { return true; }
  torch::Tensor support() const override { return support_; }

  void to(const torch::Device& d) override {
    device_ = d;
    edges_ = edges_.to(d);
    support_ = support_.to(d);
    support_f32_ = support_f32_.to(d);
  }

  torch::Tensor per_sample(const torch::Tensor& head_out,
                           const torch::Tensor& target) const override {
    check_shapes(head_out, target, m_);
    const auto logits = head_out.to(compute_type(head_out, target));
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = squash_(target).to(logits.scalar_type());
    }
    if (kind_ == Target::kExpectationMse) return (expectation(logits) - y).pow(2);
    return -(distribution(y) * torch::log_softmax(logits, -1)).sum(-1);
  }

  torch::Tensor chosen_loss(const torch::Tensor& head_out, const torch::Tensor& actions,
                            const torch::Tensor& target) const override {
    if (kind_ == Target::kExpectationMse || head_out.dim() != 3)
      return ValueLoss::chosen_loss(head_out, actions, target);
    return chosen_cross_entropy(head_out, actions, chosen_distribution(head_out, target));
  }

  torch::Tensor chosen_rows(const torch::Tensor& head_out, const torch::Tensor& actions,
                            const torch::Tensor& target) const override {
    if (kind_ == Target::kExpectationMse || head_out.dim() != 3)
      return ValueLoss::chosen_rows(head_out, actions, target);
    return chosen_cross_entropy_rows(head_out, actions, chosen_distribution(head_out, target));
  }

  int greedy_on_host(const float* heads, int64_t actions) const override {
    // h^-1 keeps the order: the largest expectation is the largest value.
    // Once per environment step: the buffer outlives the call.
    thread_local std::vector<float> values;
    values.resize(static_cast<size_t>(actions));
    expectation_rows(heads, actions, m_, support_host_.data(), values.data());
    return static_cast<int>(std::max_element(values.begin(), values.end()) - values.begin());
  }

  torch::Tensor value(const torch::Tensor& head_out) const override {
    check_head(head_out, m_);
    torch::NoGradGuard no_grad;
    const auto ct = torch::promote_types(head_out.scalar_type(), torch::kFloat32);
    const auto v = expectation(head_out.detach().to(ct));
    return squash_.inverse(v);
  }

 private:
  torch::Tensor expectation(const torch::Tensor& logits) const {
    return value::expectation(logits, logits.scalar_type() == torch::kFloat
                                          ? support_f32_
                                          : support_.to(logits.scalar_type()));
  }

  // The target distribution [B, m] of chosen_loss's and chosen_rows's targets [B].
  torch::Tensor chosen_distribution(const torch::Tensor& head_out,
                                    const torch::Tensor& target) const {
    check_head(head_out, m_);
    torch::NoGradGuard no_grad;
    return distribution(squash_(target).to(compute_type(head_out, target)));
  }

  // The target distribution [..., m] of targets y [...] (already squashed), under no-grad.
  torch::Tensor distribution(const torch::Tensor& y) const {
    torch::NoGradGuard no_grad;
    if (kind_ == Target::kHlGauss) return hl_gauss_targets(y, edges_, sigma_);
    if (kind_ == Target::kOneHot) return one_hot_targets(y, edges_);
    return two_hot_targets(y, support_);
  }

  Target kind_;
  int64_t m_;
  Squash squash_;
  double sigma_ratio_;
  double sigma_ = 0;
  torch::Device device_ = torch::kCPU;
  torch::Tensor edges_;              // [m + 1], float64: hl_gauss integrates over these
  torch::Tensor support_;            // [m], float64: bin centres, or c51's atoms
  torch::Tensor support_f32_;        // support_ in float32, for float32 heads
  std::vector<float> support_host_;  // the same on the host, for greedy_on_host
};

std::unique_ptr<ValueLoss> make_categorical(const ValueLossConfig& c, Target kind) {
  return std::make_unique<CategoricalLoss>(c, kind);
}

const bool registered_two_hot = registry<ValueLossEntry>().add(
    "two_hot", {"categorical head, cross-entropy against two-hot targets on the bin centres",
                [](const ValueLossConfig& c) { return make_categorical(c, Target::kTwoHot); }});

const bool registered_hl_gauss = registry<ValueLossEntry>().add(
    "hl_gauss", {"categorical head, cross-entropy against a Gaussian of sigma_ratio bin widths "
                 "integrated over the bins",
                 [](const ValueLossConfig& c) { return make_categorical(c, Target::kHlGauss); }});

const bool registered_one_hot = registry<ValueLossEntry>().add(
    "one_hot",
    {"categorical head, cross-entropy against the bin that holds the target (Ruoss et al.'s "
     "classification baseline)",
     [](const ValueLossConfig& c) { return make_categorical(c, Target::kOneHot); }});

const bool registered_c51 = registry<ValueLossEntry>().add(
    "c51", {"categorical head on atoms linspace(v_min, v_max, num_bins); supervised targets are "
            "two-hot on the atoms",
            [](const ValueLossConfig& c) { return make_categorical(c, Target::kC51); },
            /*distributional=*/true});

const bool registered_mse_on_expectation = registry<ValueLossEntry>().add(
    "mse_on_expectation",
    {"categorical head trained with MSE on its expectation (ablation: softmax without "
     "cross-entropy)",
     [](const ValueLossConfig& c) { return make_categorical(c, Target::kExpectationMse); }});

}  // namespace

std::vector<std::string> value_loss_names() {
  return registry<ValueLossEntry>().names();
}

const char* value_loss_doc() {
  static const std::string doc = "value loss: " + registry<ValueLossEntry>().describe();
  return doc.c_str();
}

torch::Tensor ValueLoss::chosen_loss(const torch::Tensor& head_out, const torch::Tensor& actions,
                                     const torch::Tensor& target) const {
  return ValueLoss::chosen_rows(head_out, actions, target).mean();
}

torch::Tensor ValueLoss::chosen_rows(const torch::Tensor& head_out, const torch::Tensor& actions,
                                     const torch::Tensor& target) const {
  const int64_t B = head_out.size(0), K = head_out.size(2);
  const auto chosen = head_out.gather(1, actions.view({B, 1, 1}).expand({B, 1, K})).squeeze(1);
  return per_sample(chosen, target);
}

std::unique_ptr<ValueLoss> make_value_loss(const ValueLossConfig& cfg) {
  const ValueLossEntry& entry = registry<ValueLossEntry>().get(cfg.loss, "value.loss");
  if (cfg.num_bins < 2)
    throw InputError(stoch::str("value.num_bins: expected an integer >= 2, got ", cfg.num_bins));
  if (!std::isfinite(cfg.v_min) || !std::isfinite(cfg.v_max) || cfg.v_min >= cfg.v_max)
    throw InputError(stoch::str("value.v_min, value.v_max: expected finite v_min < v_max, got ",
                                cfg.v_min, " and ", cfg.v_max));
  if (!(cfg.sigma_ratio > 0) || !std::isfinite(cfg.sigma_ratio))
    throw InputError(stoch::str("value.sigma_ratio: expected a number > 0, got ", cfg.sigma_ratio));
  if (!(cfg.huber_delta > 0) || !std::isfinite(cfg.huber_delta))
    throw InputError(stoch::str("value.huber_delta: expected a number > 0, got ", cfg.huber_delta));
  if (cfg.support != "fixed" && cfg.support != "auto" && cfg.support != "running")
    throw InputError(
        stoch::str("value.support: expected fixed, auto or running, got ", cfg.support));
  if (!(cfg.support_k > 0) || !std::isfinite(cfg.support_k))
    throw InputError(stoch::str("value.support_k: expected a number > 0, got ", cfg.support_k));
  if (!(cfg.support_rate > 0 && cfg.support_rate <= 1))
    throw InputError(
        stoch::str("value.support_rate: expected a number in (0, 1], got ", cfg.support_rate));
  const std::string t = cfg.transform();
  if (t != "none" && t != "muzero" && t != "symlog")
    throw InputError(stoch::str("value.value_transform: expected none, muzero or symlog, got ",
                                cfg.value_transform));
  return entry.make(cfg);
}

}  // namespace stoch::value
