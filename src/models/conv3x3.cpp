#include "models/conv3x3.h"

#include <torch/torch.h>

#include <vector>

// The loops below are compiled for AVX-512 and AVX2 as well as the baseline, and the best the
// CPU has is picked at load time: the build stays portable while the O-wide updates use the
// machine's full vector width.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STOCH_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define STOCH_VECTOR_CLONES
#endif

namespace stoch::models {
namespace {

struct Geometry {
  int64_t C, H, W, O, pad, OH, OW, L;
};

Geometry geometry(const torch::Tensor& x, int64_t out_channels, int64_t pad) {
  Geometry g{x.size(1), x.size(2), x.size(3), out_channels, pad, 0, 0, 0};
  g.OH = g.H + 2 * pad - 2;
  g.OW = g.W + 2 * pad - 2;
  g.L = g.OH * g.OW;
  return g;
}

// Whether an input row has no non-zero pixel: such rows (most of a MinAtar frame) add nothing.
inline bool all_zero(const float* row, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (row[i] != 0.0f) return false;
  return true;
}

// padded[j] = row[j - pad], zero outside the row: output column ox reads padded[ox + kx].
inline void pad_row(const float* row, const Geometry& g, float* padded) {
  for (int64_t j = 0; j < g.pad; ++j) padded[j] = padded[g.pad + g.W + j] = 0.0f;
  for (int64_t j = 0; j < g.W; ++j) padded[g.pad + j] = row[j];
}

// Samples [begin, end) of out [B, O, OH, OW] = bias + the convolution, row by row: each
// non-zero input row (c, iy) adds, for each kernel row ky and output channel o, three weighted
// copies of itself to output row oy = iy + pad - ky. weight: [O, C, 3, 3].
STOCH_VECTOR_CLONES
void forward_samples(const float* x, const float* weight, const float* bias, const Geometry& g,
                     int64_t begin, int64_t end, float* padded, float* out) {
  for (int64_t b = begin; b < end; ++b) {
    float* ob = out + b * g.O * g.L;
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t p = 0; p < g.L; ++p) ob[o * g.L + p] = bias[o];
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t iy = 0; iy < g.H; ++iy) {
        const float* row = x + ((b * g.C + c) * g.H + iy) * g.W;
        if (all_zero(row, g.W)) continue;
        pad_row(row, g, padded);
        for (int64_t ky = 0; ky < 3; ++ky) {
          const int64_t oy = iy + g.pad - ky;
          if (oy < 0 || oy >= g.OH) continue;
          for (int64_t o = 0; o < g.O; ++o) {
            const float* w = weight + (o * g.C + c) * 9 + ky * 3;
            const float w0 = w[0], w1 = w[1], w2 = w[2];
            float* __restrict dst = ob + o * g.L + oy * g.OW;
            for (int64_t ox = 0; ox < g.OW; ++ox)
              dst[ox] = ((dst[ox] + w0 * padded[ox]) + w1 * padded[ox + 1]) + w2 * padded[ox + 2];
          }
        }
      }
  }
}

// acc [O, C, 9, OW] += the weight-gradient terms of samples [begin, end), kept per output
// column so that the inner loop is a vector update; grad: [B, O, OH, OW].
STOCH_VECTOR_CLONES
void weight_grad_samples(const float* x, const float* grad, const Geometry& g, int64_t begin,
                         int64_t end, float* padded, float* acc) {
  for (int64_t b = begin; b < end; ++b) {
    const float* gb = grad + b * g.O * g.L;
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t iy = 0; iy < g.H; ++iy) {
        const float* row = x + ((b * g.C + c) * g.H + iy) * g.W;
        if (all_zero(row, g.W)) continue;
        pad_row(row, g, padded);
        for (int64_t ky = 0; ky < 3; ++ky) {
          const int64_t oy = iy + g.pad - ky;
          if (oy < 0 || oy >= g.OH) continue;
          for (int64_t o = 0; o < g.O; ++o) {
            const float* __restrict gr = gb + o * g.L + oy * g.OW;
            float* __restrict a = acc + ((o * g.C + c) * 9 + ky * 3) * g.OW;
            for (int64_t kx = 0; kx < 3; ++kx)
              for (int64_t ox = 0; ox < g.OW; ++ox) a[kx * g.OW + ox] += gr[ox] * padded[ox + kx];
          }
        }
      }
  }
}

}  // namespace

bool conv3x3_direct_supported(const torch::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4;
}

torch::Tensor conv3x3_forward(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, int64_t pad) {
  const auto in = x.contiguous();
  const Geometry g = geometry(in, weight.size(0), pad);
  const int64_t B = in.size(0);
  const auto w = weight.contiguous();
  const auto b = bias.contiguous();
  auto out = torch::empty({B, g.O, g.L}, in.options());
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * pad));
  forward_samples(in.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), g, 0, B,
                  padded.data(), out.data_ptr<float>());
  return out;
}

torch::Tensor conv3x3_weight_grad(const torch::Tensor& x, const torch::Tensor& grad, int64_t pad,
                                  int64_t begin, int64_t end) {
  const auto in = x.contiguous();
  const auto gr = grad.contiguous();
  const Geometry g = geometry(in, gr.size(1), pad);
  std::vector<float> acc(static_cast<size_t>(g.O * g.C * 9 * g.OW), 0.0f);
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * pad));
  weight_grad_samples(in.data_ptr<float>(), gr.data_ptr<float>(), g, begin, end, padded.data(),
                      acc.data());
  auto dw = torch::empty({g.O, g.C, 3, 3}, gr.options());
  float* d = dw.data_ptr<float>();
  for (int64_t t = 0; t < g.O * g.C * 9; ++t) {
    float sum = 0.0f;
    for (int64_t ox = 0; ox < g.OW; ++ox) sum += acc[t * g.OW + ox];
    d[t] = sum;
  }
  return dw;
}

}  // namespace stoch::models
