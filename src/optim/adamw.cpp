#include "optim/adamw.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/errors.h"
#include "core/strings.h"
#include "core/torch/lane.h"
#include "optim/adamw_host.h"

namespace stoch::optim {

bool decays(const std::string& name, const torch::Tensor& p) {
  if (p.dim() < 2) return false;  // biases, norms' scales
  // Embedding tables: GPT's token and position tables (wte, wpe) and the transformer torso's
  // position table (pos). The torso's input projection ("embed") is a matrix like any other.
  const auto parts = split(name, '.');
  for (const auto& part : parts)
    if (part == "wte" || part == "wpe") return false;
  return parts.back() != "pos";
}

namespace {

std::vector<AdamW::Param> trained(
    const std::vector<std::pair<std::string, torch::Tensor>>& named_params) {
  std::vector<AdamW::Param> out;
  for (const auto& [name, p] : named_params)
    if (p.requires_grad()) out.push_back({name, p, decays(name, p), {}, {}});
  return out;
}

}  // namespace

torch::Tensor clip_coefficient(const torch::Tensor& norm, double max_norm) {
  return torch::clamp_max(max_norm / (norm + 1e-6), 1.0);
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  const auto total = torch::linalg_vector_norm(torch::stack(at::_foreach_norm(grads, 2)), 2);
  at::_foreach_mul_(grads, clip_coefficient(total, max_norm));
  return total;
}

AdamW::AdamW(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
             OptimConfig cfg)
    : AdamW(trained(named_params), cfg) {}

AdamW::AdamW(std::vector<Param> params, OptimConfig cfg) : cfg_(cfg) {
  for (auto& p : params) {
    Slot s;
    s.name = std::move(p.name);
    s.param = p.value;
    const auto zeros = [&] { return torch::zeros_like(p.value, torch::MemoryFormat::Preserve); };
    s.exp_avg = p.exp_avg.defined() ? p.exp_avg : zeros();
    s.exp_avg_sq = p.exp_avg_sq.defined() ? p.exp_avg_sq : zeros();
    // The fused kernel takes its step counts as float tensors on the parameter's device.
    s.step = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(p.value.device()));
    s.decay = p.decay;
    slots_.push_back(std::move(s));
  }
}

void AdamW::zero_grad() {
  for (auto& s : slots_) s.param.mutable_grad() = torch::Tensor();
}

void AdamW::step(double lr) {
  std::vector<Slot*> decay, no_decay;
  for (auto& s : slots_) {
    if (!s.param.grad().defined()) continue;
    (s.decay ? decay : no_decay).push_back(&s);
  }
  if (cfg_.weight_decay == 0.0) {
    // One group is one kernel launch (and one step-count update) instead of two.
    decay.insert(decay.end(), no_decay.begin(), no_decay.end());
    step_group(decay, lr, 0.0);
    return;
  }
  step_group(decay, lr, cfg_.weight_decay);
  step_group(no_decay, lr, 0.0);
}

void AdamW::fused_step(const std::vector<Slot*>& slots, double lr, double wd) {
  std::vector<torch::Tensor> p, g, m, v, st;
  for (auto* s : slots) {
    p.push_back(s->param);
    g.push_back(s->param.grad());
    m.push_back(s->exp_avg);
    v.push_back(s->exp_avg_sq);
    st.push_back(s->step);
  }
  at::_fused_adamw_(p, g, m, v, {}, st, lr, cfg_.beta1, cfg_.beta2, wd, cfg_.eps,
                    /*amsgrad=*/false, /*maximize=*/false);
}

namespace {

bool on_host_as_float(const torch::Tensor& t) {
  return t.is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

}  // namespace

bool AdamW::host_step(const std::vector<Slot*>& slots, double lr, double wd) {
  for (auto* s : slots) {
    const auto& g = s->param.grad();
    if (!on_host_as_float(s->param) || !on_host_as_float(g) || !on_host_as_float(s->exp_avg) ||
        !on_host_as_float(s->exp_avg_sq) || !s->step.is_cpu() ||
        s->step.scalar_type() != torch::kFloat)
      return false;
  }
  struct Range {
    float *p, *m, *v;
    const float* g;
    int64_t n;
    AdamWStep c;
  };
  std::vector<Range> ranges;
  int64_t total = 0;
  for (auto* s : slots) {
    float& t = *s->step.data_ptr<float>();
    t += 1.0f;
    ranges.push_back({s->param.data_ptr<float>(), s->exp_avg.data_ptr<float>(),
                      s->exp_avg_sq.data_ptr<float>(), s->param.grad().data_ptr<float>(),
                      s->param.numel(),
                      adamw_step_constants(lr, cfg_.beta1, cfg_.beta2, cfg_.eps, wd, t)});
    total += s->param.numel();
  }
  // Elements [from, to) of the slots laid end to end.
  auto update = [&](int64_t from, int64_t to) {
    int64_t start = 0;
    for (const auto& r : ranges) {
      const int64_t a = std::max(from, start), b = std::min(to, start + r.n);
      if (a < b) {
        const int64_t o = a - start;
        adamw_host_update(r.p + o, r.g + o, r.m + o, r.v + o, b - a, r.c);
      }
      start += r.n;
    }
  };
  Lane* lane = lane_;
  constexpr int64_t kMinSplit = 1 << 15;  // smaller updates are not worth a hand-off
  if (!lane) {
    // Language models: the intra-op threads share large updates.
    at::parallel_for(0, total, kMinSplit, update);
    return true;
  }
  if (total < kMinSplit) {
    update(0, total);
    return true;
  }
  const int64_t half = total / 2 / 64 * 64;
  run_side_by_side(
      lane, [&] { update(0, half); }, [&] { update(half, total); });
  return true;
}

void AdamW::step_group(const std::vector<Slot*>& slots, double lr, double wd) {
  if (slots.empty()) return;
  torch::NoGradGuard no_grad;
  if (cfg_.fused && adamw_host_preferred(cpu_isa()) && host_step(slots, lr, wd)) return;
  if (cfg_.fused) {
    std::vector<torch::Tensor> st;
    for (auto* s : slots) st.push_back(s->step);
    // The kernel reads the step counts but leaves incrementing them to the caller.
    at::_foreach_add_(st, 1.0);
    fused_step(slots, lr, wd);
    return;
  }
  // Reference form (PyTorch's AdamW): decay, moments, bias correction, update.
  for (auto* s : slots) {
    s->step += 1;
    const double t = s->step.item<double>();
    auto g = s->param.grad();
    s->param.mul_(1.0 - lr * wd);
    s->exp_avg.lerp_(g, 1.0 - cfg_.beta1);
    s->exp_avg_sq.mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    const double bc1 = 1.0 - std::pow(cfg_.beta1, t), bc2 = 1.0 - std::pow(cfg_.beta2, t);
    auto denom = (s->exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    s->param.addcdiv_(s->exp_avg, denom, -lr / bc1);
  }
}

TensorList AdamW::state() const {
  TensorList out;
  for (const auto& s : slots_) {
    out.emplace_back(s.name + ".exp_avg", s.exp_avg);
    out.emplace_back(s.name + ".exp_avg_sq", s.exp_avg_sq);
    out.emplace_back(s.name + ".step", s.step);
  }
  return out;
}

void AdamW::load_state(const TensorList& saved) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    for (auto [suffix, dst] :
         {std::pair{".exp_avg", &s.exp_avg}, std::pair{".exp_avg_sq", &s.exp_avg_sq},
          std::pair{".step", &s.step}}) {
      auto it = by_name.find(s.name + suffix);
      if (it == by_name.end())
        throw InputError(stoch::str("optimizer state lacks ", s.name, suffix));
      if (it->second.sizes() != dst->sizes())
        throw InputError(stoch::str("optimizer state ", s.name, suffix, " has shape ",
                                    it->second.sizes(), ", expected ", dst->sizes()));
      dst->copy_(it->second);
    }
  }
}

}  // namespace stoch::optim
