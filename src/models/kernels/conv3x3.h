// A 3x3, stride-1 convolution computed straight from its input image (CPU float32), for the
// first layer of a small value network. MinAtar's frames are binary and mostly zero: walking
// the input and skipping its zeros (whole rows in the portable kernels, single pixels in the
// AVX2 and AVX-512 ones) does a fraction of the work of im2col plus a product, and needs no column
// buffer. Skipping a zero input changes no result (it would add +-0).
#pragma once

#include <torch/types.h>

namespace stoch::models {

// Whether the direct kernels take this input (CPU, float32, [B, C, H, W]).
bool conv3x3_direct_supported(const torch::Tensor& x);

// x [B, C, H, W], weight [O, C, 3, 3], bias [O] -> pre-activation [B, O, OH * OW] with
// OH = H + 2 * pad - 2 (the [c, h, w] order that flattening the module's output gives).
torch::Tensor conv3x3_forward(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, int64_t pad);

// One sample on raw host arrays (for acting): x [C, H, W], weight [O, C, 3, 3], bias [O] ->
// out [O, OH * OW], the same values conv3x3_forward gives.
void conv3x3_forward_host(const float* x, int64_t channels, int64_t height, int64_t width,
                          const float* weight, const float* bias, int64_t out_channels, int64_t pad,
                          float* out);

// The weight gradient [O, C, 3, 3] from samples [begin, end) of the input x and of the
// pre-activation gradient g [B, O, OH * OW].
torch::Tensor conv3x3_weight_grad(const torch::Tensor& x, const torch::Tensor& g, int64_t pad,
                                  int64_t begin, int64_t end);

// With AVX2 or AVX-512 and 16 output channels, wider kernels run (the same terms in the same
// order, so the same bits); tests turn them off to compare the two.
void set_conv3x3_wide_kernels(bool enabled);

}  // namespace stoch::models
