// The two halves of a loss on each row's chosen head, [B, A, K] -> one head per row, that the
// one-node losses on the CPU share (value_loss.cpp's scalar loss, categorical_ops.cpp's
// cross-entropy): finding the heads, and writing their gradients back into a zero [B, A, K].
#pragma once

#include <torch/types.h>

#include <vector>

namespace stoch::value {

// i * A + actions[i] for each of the B rows: the flat index of row i's chosen head. Throws
// c10::Error naming `who` and the action for an action outside [0, A).
std::vector<int64_t> chosen_heads(const int64_t* actions, int64_t B, int64_t A, const char* who);

// A zero float32 [B, A, K] whose chosen heads hold rows[i] * scale[i * scale_stride]: rows
// [B, K] float32 contiguous, actions [B] int64 already checked; scale_stride 0 for one scale.
torch::Tensor scatter_to_chosen(const torch::Tensor& actions, const torch::Tensor& rows, int64_t A,
                                const float* scale, int64_t scale_stride);

}  // namespace stoch::value
