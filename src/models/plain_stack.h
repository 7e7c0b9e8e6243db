// A network that is a plain stack of 3x3 convolutions (stride 1) and linear layers, each but
// the last followed by one elementwise activation, run as a single autograd node with a
// hand-written backward. The math is the module path's; what goes away is the per-operator
// autograd bookkeeping, which dominates small value networks (a MinAtar DQN update is about a
// hundred small operators around four 32 x 1024 x 128 products).
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace stoch {
class Lane;
}

namespace stoch::models {

struct PlainLayer {
  enum class Kind { kConv3x3, kLinear };
  Kind kind = Kind::kLinear;
  torch::Tensor weight, bias;  // the module's own parameters: gradients land in their .grad
  int64_t padding = 0;         // conv only
  bool activate = true;        // false for the output layer
};

// Activations the hand-written backward knows.
bool plain_activation_supported(const std::string& activation);

// x: [B, ...] (conv stacks take [B, C, H, W]; a linear layer flattens what it gets) -> [B, out].
// Differentiable with respect to every weight and bias (not x).
// With a `lane`, the backward computes weight gradients there, beside the chain of input
// gradients (the same values).
torch::Tensor plain_stack_forward(const std::vector<PlainLayer>& layers,
                                  const std::string& activation, const torch::Tensor& x,
                                  Lane* lane = nullptr);

// One input row through the stack on raw host arrays, without operators: acting calls it every
// environment step, where a dozen operator calls cost more than the arithmetic. x: the row in the
// layout plain_stack_forward takes without the batch ([C, H, W] for conv stacks, flat for
// linear ones); out: the last layer's outputs. The values match plain_stack_forward's up to
// rounding. Returns false, writing nothing, unless every weight and bias is a contiguous CPU
// float32 tensor of the shapes the input implies.
bool plain_stack_forward_row(const std::vector<PlainLayer>& layers, const std::string& activation,
                             const std::vector<int64_t>& input_shape, const float* x, float* out);

}  // namespace stoch::models
