// AdamW with decoupled weight decay, applied to two parameter groups (decay / no decay).
// Its state is plain tensors so that checkpoints hold it exactly and resume is bit-for-bit.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "core/config_schema.h"
#include "core/torch/safetensors.h"

namespace stoch {
class Lane;
}

namespace stoch::optim {

struct OptimConfig {
  double lr = 1e-3;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  bool fused = true;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("lr", lr, "peak learning rate (the schedule scales it)", Spec().above(0));
    v("weight_decay", weight_decay,
      "decoupled weight decay on matrices (not on norms, biases, embeddings)", Spec().at_least(0));
    v("beta1", beta1, "AdamW first-moment decay", Spec().at_least(0).at_most(0.999999));
    v("beta2", beta2, "AdamW second-moment decay", Spec().at_least(0).at_most(0.999999));
    v("eps", eps, "AdamW denominator epsilon", Spec().above(0));
    v("fused", fused,
      "one fused pass per parameter (stoch's own on the CPU, LibTorch's fused kernel on CUDA; "
      "false: the plain reference ops)");
  }
};

// Whether a parameter gets weight decay: matrices do; norms, biases and embeddings do not.
bool decays(const std::string& name, const torch::Tensor& p);

// Scales the gradients of `params` so their global L2 norm is at most max_norm, with
// multi-tensor kernels (one launch per step rather than several per parameter) and without a
// host sync. Returns the norm before clipping.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

// The factor clipping multiplies gradients by, given their global norm.
torch::Tensor clip_coefficient(const torch::Tensor& norm, double max_norm);

class AdamW {
 public:
  // A tensor the optimiser updates from its .grad. Sharded runs (train/zero.h) pass slices of
  // parameters, with the decay of the whole parameter and moments that are views into one flat
  // buffer; undefined moments are allocated as zeros.
  struct Param {
    std::string name;
    torch::Tensor value;
    bool decay = false;
    torch::Tensor exp_avg, exp_avg_sq;
  };

  AdamW(const std::vector<std::pair<std::string, torch::Tensor>>& named_params, OptimConfig cfg);
  AdamW(std::vector<Param> params, OptimConfig cfg);

  void zero_grad();
  void step(double lr);

  TensorList state() const;              // moments and step counts, by parameter name
  void load_state(const TensorList& s);  // throws InputError when names or shapes differ
  // A helper lane takes half of each host update (null: none; the same values either way).
  void set_lane(Lane* lane) { lane_ = lane; }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, exp_avg, exp_avg_sq, step;
    bool decay;
  };
  void step_group(const std::vector<Slot*>& slots, double lr, double wd);
  // The fused update on float32 host tensors (adamw_host.h), half of the elements on the
  // helper lane if there is one; false when some tensor is elsewhere or of another type.
  bool host_step(const std::vector<Slot*>& slots, double lr, double wd);
  Lane* lane_ = nullptr;
  // LibTorch's fused kernel over the slots: what host_step does not take (CUDA, other types).
  void fused_step(const std::vector<Slot*>& slots, double lr, double wd);
  OptimConfig cfg_;
  std::vector<Slot> slots_;
};

}  // namespace stoch::optim
