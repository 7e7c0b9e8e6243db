#include "train/optim.h"

#include <torch/torch.h>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {

bool decays(const std::string& name, const torch::Tensor& p) {
  return p.dim() >= 2 && name.find("emb") == std::string::npos &&
         name.find("wte") == std::string::npos && name.find("wpe") == std::string::npos;
}

AdamW::AdamW(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
             OptimConfig cfg)
    : cfg_(cfg) {
  for (const auto& [name, p] : named_params) {
    if (!p.requires_grad()) continue;
    Slot s;
    s.name = name;
    s.param = p;
    s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    s.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    // The fused kernel takes its step counts as float tensors on the parameter's device.
    s.step = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(p.device()));
    s.decay = decays(name, p);
    slots_.push_back(std::move(s));
  }
}

int64_t AdamW::num_decayed() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.decay ? s.param.numel() : 0;
  return n;
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
  step_group(decay, lr, cfg_.weight_decay);
  step_group(no_decay, lr, 0.0);
}

void AdamW::step_group(const std::vector<Slot*>& slots, double lr, double wd) {
  if (slots.empty()) return;
  torch::NoGradGuard no_grad;
  if (cfg_.fused) {
    std::vector<torch::Tensor> ps, gs, m, v, st;
    for (auto* s : slots) {
      ps.push_back(s->param);
      gs.push_back(s->param.grad());
      m.push_back(s->exp_avg);
      v.push_back(s->exp_avg_sq);
      st.push_back(s->step);
    }
    // The kernel reads the step counts but leaves incrementing them to the caller.
    at::_foreach_add_(st, 1.0);
    at::_fused_adamw_(ps, gs, m, v, {}, st, lr, cfg_.beta1, cfg_.beta2, wd, cfg_.eps,
                      /*amsgrad=*/false, /*maximize=*/false);
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

}  // namespace stoch::train
