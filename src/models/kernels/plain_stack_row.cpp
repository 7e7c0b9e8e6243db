// One input row through a plain stack on raw host arrays: what acting calls every environment
// step (see plain_stack.h). Built with -ffp-contract=off, like the other hand-written kernels.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_isa.h"
#include "models/kernels/conv3x3.h"
#include "models/plain_stack.h"

namespace stoch::models {
namespace {

// y[j] = bias[j] + sum_k w[j, k] x[k]; sixteen running partial sums per output so that the
// product vectorises (at the clone's width, each partial sum rounding alike).
struct LinearRowKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* w, const float* bias, const float* x, int64_t in,
                                      int64_t out, float* y) {
    for (int64_t j = 0; j < out; ++j) {
      const float* row = w + j * in;
      float part[16] = {};
      int64_t k = 0;
      for (; k + 16 <= in; k += 16)
        for (int l = 0; l < 16; ++l) part[l] += row[k + l] * x[k + l];
      float sum = 0.0f;
      for (float p : part) sum += p;
      for (; k < in; ++k) sum += row[k] * x[k];
      y[j] = bias[j] + sum;
    }
  }
};

void activate_row(std::vector<float>& v, bool tanh) {
  for (float& x : v) x = tanh ? std::tanh(x) : (x < 0.0f ? 0.0f : x);
}

bool on_host(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

}  // namespace

bool plain_stack_forward_row(const std::vector<PlainLayer>& layers, const std::string& activation,
                             const std::vector<int64_t>& input_shape, const float* x, float* out) {
  if (layers.empty() || !plain_activation_supported(activation)) return false;
  for (const auto& l : layers)
    if (!on_host(l.weight) || !on_host(l.bias)) return false;
  const bool tanh = activation == "tanh";
  int64_t n = 1;
  for (int64_t d : input_shape) n *= d;
  int64_t c = 0, h = 0, w = 0;
  if (input_shape.size() == 3) {
    c = input_shape[0];
    h = input_shape[1];
    w = input_shape[2];
  }
  std::vector<float> a(x, x + n), b;
  for (const auto& l : layers) {
    const float* wp = l.weight.data_ptr<float>();
    const float* bp = l.bias.data_ptr<float>();
    const int64_t o = l.weight.size(0);
    if (l.kind == PlainLayer::Kind::kConv3x3) {
      if (h == 0 || l.weight.size(1) != c) return false;
      const int64_t oh = h + 2 * l.padding - 2, ow = w + 2 * l.padding - 2;
      b.resize(static_cast<size_t>(o * oh * ow));
      conv3x3_forward_host(a.data(), c, h, w, wp, bp, o, l.padding, b.data());
      c = o;
      h = oh;
      w = ow;
    } else {
      if (l.weight.size(1) != static_cast<int64_t>(a.size())) return false;
      b.resize(static_cast<size_t>(o));
      dispatch_isa<LinearRowKernel>(wp, bp, static_cast<const float*>(a.data()),
                                    static_cast<int64_t>(a.size()), o, b.data());
      h = 0;
    }
    if (l.activate) activate_row(b, tanh);
    std::swap(a, b);
  }
  std::copy(a.begin(), a.end(), out);
  return true;
}

}  // namespace stoch::models
