#include "models/conv3x3.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/vector_clones.h"
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define STOCH_WIDE_KERNELS 1
#endif
#if defined(STOCH_WIDE_KERNELS) && !defined(__clang__)
// GCC 12's AVX-512 headers start shuffles from an "undefined" register and warn about it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace stoch::models {
namespace {

struct Geometry {
  int64_t C, H, W, O, pad, OH, OW, L;
};

Geometry geometry(int64_t C, int64_t H, int64_t W, int64_t out_channels, int64_t pad) {
  const int64_t OH = H + 2 * pad - 2, OW = W + 2 * pad - 2;
  return {C, H, W, out_channels, pad, OH, OW, OH * OW};
}

// x: [B, C, H, W].
Geometry geometry(const torch::Tensor& x, int64_t out_channels, int64_t pad) {
  return geometry(x.size(1), x.size(2), x.size(3), out_channels, pad);
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

// Calls visit(c, ky, oy) with `padded` holding input row (c, iy) of sample b, for every
// non-zero row and each kernel row ky whose output row oy = iy + pad - ky exists.
template <class Visit>
inline void for_each_row_tap(const float* x, const Geometry& g, int64_t b, float* padded,
                             Visit&& visit) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t iy = 0; iy < g.H; ++iy) {
      const float* row = x + ((b * g.C + c) * g.H + iy) * g.W;
      if (all_zero(row, g.W)) continue;
      pad_row(row, g, padded);
      for (int64_t ky = 0; ky < 3; ++ky) {
        const int64_t oy = iy + g.pad - ky;
        if (oy >= 0 && oy < g.OH) visit(c, ky, oy);
      }
    }
}

// Samples [begin, end) of out [B, O, OH, OW] = bias + the convolution, row by row: each
// non-zero input row (c, iy) adds, for each kernel row ky and output channel o, three weighted
// copies of itself to output row oy. weight: [O, C, 3, 3].
STOCH_VECTOR_CLONES
void forward_samples(const float* x, const float* weight, const float* bias, const Geometry& g,
                     int64_t begin, int64_t end, float* padded, float* out) {
  for (int64_t b = begin; b < end; ++b) {
    float* ob = out + b * g.O * g.L;
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t p = 0; p < g.L; ++p) ob[o * g.L + p] = bias[o];
    for_each_row_tap(x, g, b, padded, [&](int64_t c, int64_t ky, int64_t oy) {
      for (int64_t o = 0; o < g.O; ++o) {
        const float* w = weight + (o * g.C + c) * 9 + ky * 3;
        const float w0 = w[0], w1 = w[1], w2 = w[2];
        float* __restrict dst = ob + o * g.L + oy * g.OW;
        for (int64_t ox = 0; ox < g.OW; ++ox)
          dst[ox] = ((dst[ox] + w0 * padded[ox]) + w1 * padded[ox + 1]) + w2 * padded[ox + 2];
      }
    });
  }
}

// acc [O, C, 9, OW] += the weight-gradient terms of samples [begin, end), kept per output
// column so that the inner loop is a vector update; grad: [B, O, OH, OW].
STOCH_VECTOR_CLONES
void weight_grad_samples(const float* x, const float* grad, const Geometry& g, int64_t begin,
                         int64_t end, float* padded, float* acc) {
  for (int64_t b = begin; b < end; ++b) {
    const float* gb = grad + b * g.O * g.L;
    for_each_row_tap(x, g, b, padded, [&](int64_t c, int64_t ky, int64_t oy) {
      for (int64_t o = 0; o < g.O; ++o) {
        const float* __restrict gr = gb + o * g.L + oy * g.OW;
        float* __restrict a = acc + ((o * g.C + c) * 9 + ky * 3) * g.OW;
        for (int64_t kx = 0; kx < 3; ++kx)
          for (int64_t ox = 0; ox < g.OW; ++ox) a[kx * g.OW + ox] += gr[ox] * padded[ox + kx];
      }
    });
  }
}

std::atomic<bool> wide_kernels_enabled{true};

// A zeroed float buffer whose start is on a 64-byte boundary: 16-float rows then fill whole
// cache lines (a row split over two lines halves the speed of the 512-bit updates).
class AlignedFloats {
 public:
  explicit AlignedFloats(int64_t n) : buf_(static_cast<size_t>(n + 16)) {
    const auto at = reinterpret_cast<uintptr_t>(buf_.data());
    data_ = buf_.data() + ((64 - at % 64) % 64) / sizeof(float);
  }
  float* data() { return data_; }

 private:
  std::vector<float> buf_;
  float* data_;
};

#ifdef STOCH_WIDE_KERNELS
// AVX-512 kernels for 16 output channels (one register). They walk the non-zero pixels (a
// compare mask per 16 pixels) instead of whole rows, and keep the sample's activations
// positions-major, where each contribution is one 16-wide update, transposed in registers.
// Each output and weight-gradient element receives the same terms in the same order as in the
// row kernels above, so both give the same bits.

bool wide_kernels_fit(const Geometry& g) {
  static const bool cpu_has_them = __builtin_cpu_supports("avx512f");
  return cpu_has_them && g.O == 16 && wide_kernels_enabled.load(std::memory_order_relaxed);
}

// One non-zero pixel of a sample's image.
struct Pixel {
  int32_t c, y, x;
  float value;
};

// Writes one sample's non-zero pixels to `found` in (c, y, x) order; returns how many there are.
__attribute__((target("avx512f"))) int64_t nonzero_pixels(const float* image, const Geometry& g,
                                                          Pixel* found) {
  const int64_t hw = g.H * g.W;
  int64_t count = 0;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t base = 0; base < hw; base += 16) {
      const int64_t n = std::min<int64_t>(16, hw - base);
      const auto live = static_cast<__mmask16>(n == 16 ? 0xFFFF : (1u << n) - 1);
      const float* at = image + c * hw + base;
      const __m512 v = _mm512_maskz_loadu_ps(live, at);
      unsigned nz = _mm512_mask_cmp_ps_mask(live, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      while (nz) {
        const int i = __builtin_ctz(nz);
        nz &= nz - 1;
        const auto pix = static_cast<int32_t>(base + i);
        found[count++] = {static_cast<int32_t>(c), static_cast<int32_t>(pix / g.W),
                          static_cast<int32_t>(pix % g.W), at[i]};
      }
    }
  return count;
}

// One term of a sample's convolution: pixel value times weight tap `tap`, at output position
// (oy, ox), pos = oy * OW + ox.
struct Term {
  int32_t tap, pos, ox;
  float value;
};

// The terms of one sample's non-zero pixels (from nonzero_pixels), tap by tap within each
// channel: within one tap the pixels reach distinct positions, so consecutive updates do not
// wait on each other, and any one output (or weight-gradient accumulator) still receives its
// terms in (c, iy, ix) order, the row kernels' order. Returns how many there are.
int64_t tap_terms(const Pixel* found, int64_t n, const Geometry& g, Term* terms) {
  int64_t count = 0;
  for (int64_t k0 = 0; k0 < n;) {
    const int64_t c = found[k0].c;
    int64_t k1 = k0;
    while (k1 < n && found[k1].c == c) ++k1;
    for (int64_t ky = 0; ky < 3; ++ky)
      for (int64_t kx = 0; kx < 3; ++kx)
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t oy = found[k].y + g.pad - ky, ox = found[k].x + g.pad - kx;
          if (oy < 0 || oy >= g.OH || ox < 0 || ox >= g.OW) continue;
          terms[count++] = {static_cast<int32_t>(c * 9 + ky * 3 + kx),
                            static_cast<int32_t>(oy * g.OW + ox), static_cast<int32_t>(ox),
                            found[k].value};
        }
    k0 = k1;
  }
  return count;
}

// dst row c (16 floats, rows dst_stride apart) = column c of the 16 x 16 block at src (rows
// src_stride apart): unpacks, then shuffles within and across 128-bit lanes.
__attribute__((target("avx512f"))) void transpose16(const float* src, int64_t src_stride,
                                                    float* dst, int64_t dst_stride) {
  __m512 r[16], t[16], u[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
  for (int m = 0; m < 8; ++m) {
    t[2 * m] = _mm512_unpacklo_ps(r[2 * m], r[2 * m + 1]);
    t[2 * m + 1] = _mm512_unpackhi_ps(r[2 * m], r[2 * m + 1]);
  }
  // u[4q + j], 128-bit lane k: column 4k + j of rows 4q .. 4q + 3.
  for (int q = 0; q < 4; ++q) {
    u[4 * q] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 x1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 y1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    _mm512_storeu_ps(dst + j * dst_stride, _mm512_shuffle_f32x4(x0, y0, 0x88));
    _mm512_storeu_ps(dst + (4 + j) * dst_stride, _mm512_shuffle_f32x4(x1, y1, 0x88));
    _mm512_storeu_ps(dst + (8 + j) * dst_stride, _mm512_shuffle_f32x4(x0, y0, 0xDD));
    _mm512_storeu_ps(dst + (12 + j) * dst_stride, _mm512_shuffle_f32x4(x1, y1, 0xDD));
  }
}

// taps: the weight as [C*9, 16]; scratch: [L, 16]; found and terms: room for C*H*W pixels and
// 9 terms each.
__attribute__((target("avx512f"))) void forward_samples_wide(const float* x, const float* taps,
                                                             const float* bias, const Geometry& g,
                                                             int64_t begin, int64_t end,
                                                             float* scratch, Pixel* found,
                                                             Term* terms, float* out) {
  const int64_t hw = g.H * g.W;
  const __m512 b16 = _mm512_loadu_ps(bias);
  for (int64_t b = begin; b < end; ++b) {
    const float* image = x + b * g.C * hw;
    for (int64_t p = 0; p < g.L; ++p) _mm512_storeu_ps(scratch + p * 16, b16);
    const int64_t n = tap_terms(found, nonzero_pixels(image, g, found), g, terms);
    for (int64_t k = 0; k < n; ++k) {
      float* d = scratch + terms[k].pos * 16;
      const __m512 term =
          _mm512_mul_ps(_mm512_set1_ps(terms[k].value), _mm512_loadu_ps(taps + terms[k].tap * 16));
      _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), term));
    }
    float* dst = out + b * 16 * g.L;
    int64_t p0 = 0;
    for (; p0 + 16 <= g.L; p0 += 16) transpose16(scratch + p0 * 16, 16, dst + p0, g.L);
    for (; p0 < g.L; ++p0)
      for (int64_t o = 0; o < 16; ++o) dst[o * g.L + p0] = scratch[p0 * 16 + o];
  }
}

// acc: [C*9, OW, 16]; scratch: [L, 16] (the sample's gradient, positions-major).
__attribute__((target("avx512f"))) void weight_grad_samples_wide(const float* x, const float* grad,
                                                                 const Geometry& g, int64_t begin,
                                                                 int64_t end, float* scratch,
                                                                 Pixel* found, Term* terms,
                                                                 float* acc) {
  const int64_t hw = g.H * g.W;
  for (int64_t b = begin; b < end; ++b) {
    const float* image = x + b * g.C * hw;
    const float* gb = grad + b * 16 * g.L;
    int64_t p0 = 0;
    for (; p0 + 16 <= g.L; p0 += 16) transpose16(gb + p0, g.L, scratch + p0 * 16, 16);
    for (; p0 < g.L; ++p0)
      for (int64_t o = 0; o < 16; ++o) scratch[p0 * 16 + o] = gb[o * g.L + p0];
    const int64_t n = tap_terms(found, nonzero_pixels(image, g, found), g, terms);
    for (int64_t k = 0; k < n; ++k) {
      float* a = acc + (terms[k].tap * g.OW + terms[k].ox) * 16;
      const __m512 term = _mm512_mul_ps(_mm512_loadu_ps(scratch + terms[k].pos * 16),
                                        _mm512_set1_ps(terms[k].value));
      _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), term));
    }
  }
}
#else
bool wide_kernels_fit(const Geometry&) {
  return false;
}
#endif

}  // namespace

void set_conv3x3_wide_kernels(bool enabled) {
  wide_kernels_enabled.store(enabled, std::memory_order_relaxed);
}

bool conv3x3_direct_supported(const torch::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4;
}

namespace {

// B samples of x (contiguous) -> out [B, O, L]; weight [O, C, 3, 3] and bias [O], contiguous.
void forward_host(const float* x, int64_t B, const Geometry& g, const float* weight,
                  const float* bias, float* out) {
#ifdef STOCH_WIDE_KERNELS
  if (wide_kernels_fit(g)) {
    AlignedFloats taps(g.C * 9 * 16), scratch(g.L * 16);
    for (int64_t o = 0; o < 16; ++o)
      for (int64_t t = 0; t < g.C * 9; ++t) taps.data()[t * 16 + o] = weight[o * g.C * 9 + t];
    std::vector<Pixel> found(static_cast<size_t>(g.C * g.H * g.W));
    std::vector<Term> terms(found.size() * 9);
    forward_samples_wide(x, taps.data(), bias, g, 0, B, scratch.data(), found.data(), terms.data(),
                         out);
    return;
  }
#endif
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * g.pad));
  forward_samples(x, weight, bias, g, 0, B, padded.data(), out);
}

}  // namespace

torch::Tensor conv3x3_forward(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, int64_t pad) {
  const auto in = x.contiguous();
  const Geometry g = geometry(in, weight.size(0), pad);
  const auto w = weight.contiguous();
  const auto b = bias.contiguous();
  auto out = torch::empty({in.size(0), g.O, g.L}, in.options());
  forward_host(in.data_ptr<float>(), in.size(0), g, w.data_ptr<float>(), b.data_ptr<float>(),
               out.data_ptr<float>());
  return out;
}

void conv3x3_forward_host(const float* x, int64_t channels, int64_t height, int64_t width,
                          const float* weight, const float* bias, int64_t out_channels, int64_t pad,
                          float* out) {
  forward_host(x, 1, geometry(channels, height, width, out_channels, pad), weight, bias, out);
}

torch::Tensor conv3x3_weight_grad(const torch::Tensor& x, const torch::Tensor& grad, int64_t pad,
                                  int64_t begin, int64_t end) {
  const auto in = x.contiguous();
  const auto gr = grad.contiguous();
  const Geometry g = geometry(in, gr.size(1), pad);
  auto dw = torch::empty({g.O, g.C, 3, 3}, gr.options());
  float* d = dw.data_ptr<float>();
#ifdef STOCH_WIDE_KERNELS
  if (wide_kernels_fit(g)) {
    AlignedFloats scratch(g.L * 16), wide_acc(g.C * 9 * g.OW * 16);
    std::vector<Pixel> found(static_cast<size_t>(g.C * g.H * g.W));
    std::vector<Term> terms(found.size() * 9);
    weight_grad_samples_wide(in.data_ptr<float>(), gr.data_ptr<float>(), g, begin, end,
                             scratch.data(), found.data(), terms.data(), wide_acc.data());
    // acc is [C*9, OW, 16]; dw[o, tap] sums over ox in the row kernels' order.
    for (int64_t o = 0; o < 16; ++o)
      for (int64_t t = 0; t < g.C * 9; ++t) {
        float sum = 0.0f;
        for (int64_t ox = 0; ox < g.OW; ++ox) sum += wide_acc.data()[(t * g.OW + ox) * 16 + o];
        d[o * g.C * 9 + t] = sum;
      }
    return dw;
  }
#endif
  std::vector<float> acc(static_cast<size_t>(g.O * g.C * 9 * g.OW), 0.0f);
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * pad));
  weight_grad_samples(in.data_ptr<float>(), gr.data_ptr<float>(), g, begin, end, padded.data(),
                      acc.data());
  for (int64_t t = 0; t < g.O * g.C * 9; ++t) {
    float sum = 0.0f;
    for (int64_t ox = 0; ox < g.OW; ++ox) sum += acc[t * g.OW + ox];
    d[t] = sum;
  }
  return dw;
}

}  // namespace stoch::models
