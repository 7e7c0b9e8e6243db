// The bootstrapped target of a DQN update, from a replay batch's n-step returns and discounts
// (the replay buffer folds n-step sums, termination and truncation into those two):
//   y = R + discount * Q_target(s', a*),  a* = argmax_a Q_target(s', a), or with double DQN
//   argmax_a Q_online(s', a);
// and for a distributional head (C51) the return distribution of a*, shifted by R, scaled by
// the discount and projected back onto the atoms.
#pragma once

#include <torch/types.h>

namespace stoch::value {
class ValueLoss;
}

namespace stoch::rl {

struct BellmanTarget {
  torch::Tensor scalar;        // [B] y; for C51 the mean of the projected distribution's source
  torch::Tensor distribution;  // [B, atoms] for distributional heads, else undefined
};

// `next_target` [B, A, m]: the target network's heads on the next observations;
// `next_online` [B, A, m] the online network's (double DQN), or undefined to pick with the
// target network. `returns` and `discounts` [B]. No gradient flows.
BellmanTarget bellman_target(const value::ValueLoss& loss, const torch::Tensor& next_target,
                             const torch::Tensor& next_online, const torch::Tensor& returns,
                             const torch::Tensor& discounts, bool distributional);

}  // namespace stoch::rl
