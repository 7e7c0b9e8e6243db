// Operators on a categorical head's logits (last dimension: the m bins) that DQN and the value
// losses call: on CPU float32 tensors they run as the host loops of value/categorical_rows.h
// (one autograd node for the loss), elsewhere as LibTorch operators with the same meaning.
#pragma once

#include <torch/types.h>

namespace stoch::value {

// logits [..., m], support [m] -> [...]: sum_j softmax(logits)_j support_j. Differentiable
// through LibTorch's operators when logits require a gradient.
torch::Tensor expectation(const torch::Tensor& logits, const torch::Tensor& support);

// logits [..., m] -> the softmax over the last dimension (no gradient).
torch::Tensor softmax_bins(const torch::Tensor& logits);

// logits [B, A, m], actions [B] (int64), target [B, m] (a distribution per row, no gradient) ->
// [B]: -sum_j target[i, j] log softmax(logits[i, actions[i]])_j, the cross-entropy of each
// row's chosen head (prioritised replay weighs them).
torch::Tensor chosen_cross_entropy_rows(const torch::Tensor& logits, const torch::Tensor& actions,
                                        const torch::Tensor& target);

// The mean of chosen_cross_entropy_rows, summed in float64, as one node on the CPU.
torch::Tensor chosen_cross_entropy(const torch::Tensor& logits, const torch::Tensor& actions,
                                   const torch::Tensor& target);

}  // namespace stoch::value
