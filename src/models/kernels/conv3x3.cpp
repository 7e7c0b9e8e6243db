#include "models/kernels/conv3x3.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include <cstring>

#include "core/cpu_isa.h"
#include "core/simd.h"

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
// By their bits, signs masked off (+-0 count as zero, NaN does not): an OR that vectorises.
inline bool all_zero(const float* row, int64_t n) {
  uint32_t bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, row + i, sizeof b);
    bits |= b;
  }
  return (bits & 0x7fffffffu) == 0;
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
struct ForwardRows {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* x, const float* weight, const float* bias,
                                      const Geometry* geom, int64_t begin, int64_t end,
                                      float* padded, float* out) {
    const Geometry& g = *geom;
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
};

// acc [O, C, 9, OW] += the weight-gradient terms of samples [begin, end), kept per output
// column so that the inner loop is a vector update; grad: [B, O, OH, OW].
struct WeightGradRows {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* x, const float* grad, const Geometry* geom,
                                      int64_t begin, int64_t end, float* padded, float* acc) {
    const Geometry& g = *geom;
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
};

std::atomic<bool> wide_kernels_enabled{true};

// Floats whose start is on a 64-byte boundary, grown on demand and reused (contents left as
// they were): 16-float rows then fill whole cache lines (a row split over two lines halves the
// speed of the 512-bit updates).
class AlignedFloats {
 public:
  float* data(int64_t n) {
    if (buf_.size() < static_cast<size_t>(n + 16)) buf_.resize(static_cast<size_t>(n + 16));
    const auto at = reinterpret_cast<uintptr_t>(buf_.data());
    return buf_.data() + ((64 - at % 64) % 64) / sizeof(float);
  }

 private:
  std::vector<float> buf_;
};

// Kernels for 16 output channels, one 16-float vector (one AVX-512 register, two AVX2 ones).
// They walk the non-zero pixels instead of whole rows, and keep the sample's activations
// positions-major, where each contribution is one 16-wide update, transposed in registers.
// Each output and weight-gradient element receives the same terms in the same order as in the
// row kernels above, so both give the same bits. The SSE2 clone keeps the row kernels.
constexpr int64_t kWide = 16;
using Wide = simd::Simd<kWide>;

bool wide_kernels_fit(const Geometry& g) {
  return cpu_isa() >= CpuIsa::kAvx2 && g.O == kWide &&
         wide_kernels_enabled.load(std::memory_order_relaxed);
}

// One non-zero pixel of a sample's image.
struct Pixel {
  int32_t c, y, x;
  float value;
};

// Writes one sample's non-zero pixels to `found` in (c, y, x) order; returns how many there are.
inline int64_t nonzero_pixels(const float* image, const Geometry& g, Pixel* found) {
  const int64_t hw = g.H * g.W;
  int64_t count = 0;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t base = 0; base < hw; base += kWide) {
      const int64_t n = std::min<int64_t>(kWide, hw - base);
      const float* at = image + c * hw + base;
      if (n == kWide && all_zero(at, kWide)) continue;  // most of a MinAtar frame
      for (int64_t i = 0; i < n; ++i) {
        if (at[i] == 0.0f) continue;
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
// src_stride apart): in 16-float registers with AVX-512; as four 8 x 8 blocks elsewhere, where
// GCC would move a 16-lane shuffle through memory a float at a time.
template <class Isa>
STOCH_ALWAYS_INLINE void transpose16(const float* src, int64_t src_stride, float* dst,
                                     int64_t dst_stride) {
  if constexpr (Isa::kIsa == CpuIsa::kAvx512) {
    Wide::Vec m[kWide];
    for (int i = 0; i < kWide; ++i) m[i] = Wide::load(src + i * src_stride);
    Wide::transpose<kWide / 2>(m);
    for (int i = 0; i < kWide; ++i) Wide::store(dst + i * dst_stride, m[i]);
  } else {
    using Half = simd::Simd<8>;
    for (int r0 = 0; r0 < kWide; r0 += 8)
      for (int c0 = 0; c0 < kWide; c0 += 8) {
        Half::Vec m[8];
        for (int i = 0; i < 8; ++i) m[i] = Half::load(src + (r0 + i) * src_stride + c0);
        Half::transpose<4>(m);
        for (int i = 0; i < 8; ++i) Half::store(dst + (c0 + i) * dst_stride + r0, m[i]);
      }
  }
}

// Per-thread buffers of the wide kernels, kept between calls: acting runs the forward for one
// sample every environment step, where allocating (and zeroing) them cost more than the work.
struct WideWorkspace {
  AlignedFloats taps, scratch, acc;
  std::vector<Pixel> found;
  std::vector<Term> terms;

  void reserve_terms(const Geometry& g) {
    const auto pixels = static_cast<size_t>(g.C * g.H * g.W);
    if (found.size() < pixels) found.resize(pixels);
    if (terms.size() < pixels * 9) terms.resize(pixels * 9);
  }
  // The terms of one sample's image, in terms.
  int64_t terms_of(const float* image, const Geometry& g) {
    return tap_terms(found.data(), nonzero_pixels(image, g, found.data()), g, terms.data());
  }
};

WideWorkspace& wide_workspace(const Geometry& g) {
  thread_local WideWorkspace ws;
  ws.reserve_terms(g);
  return ws;
}

// taps: the weight as [C*9, 16]; scratch: [L, 16].
struct ForwardWide {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* x, const float* taps, const float* bias,
                                      const Geometry* geom, int64_t begin, int64_t end,
                                      float* scratch, WideWorkspace* ws, float* out) {
    const Geometry& g = *geom;
    const int64_t hw = g.H * g.W;
    const Wide::Vec b16 = Wide::load(bias);
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t p = 0; p < g.L; ++p) Wide::store(scratch + p * kWide, b16);
      const int64_t n = ws->terms_of(x + b * g.C * hw, g);
      const Term* terms = ws->terms.data();
      for (int64_t k = 0; k < n; ++k) {
        float* d = scratch + terms[k].pos * kWide;
        const Wide::Vec term =
            Wide::splat(terms[k].value) * Wide::load(taps + terms[k].tap * kWide);
        Wide::store(d, Wide::load(d) + term);
      }
      float* dst = out + b * kWide * g.L;
      int64_t p0 = 0;
      for (; p0 + kWide <= g.L; p0 += kWide)
        transpose16<Isa>(scratch + p0 * kWide, kWide, dst + p0, g.L);
      for (; p0 < g.L; ++p0)
        for (int64_t o = 0; o < kWide; ++o) dst[o * g.L + p0] = scratch[p0 * kWide + o];
    }
  }
};

// acc: [C*9, OW, 16]; scratch: [L, 16] (the sample's gradient, positions-major).
struct WeightGradWide {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* x, const float* grad, const Geometry* geom,
                                      int64_t begin, int64_t end, float* scratch, WideWorkspace* ws,
                                      float* acc) {
    const Geometry& g = *geom;
    const int64_t hw = g.H * g.W;
    for (int64_t b = begin; b < end; ++b) {
      const float* gb = grad + b * kWide * g.L;
      int64_t p0 = 0;
      for (; p0 + kWide <= g.L; p0 += kWide)
        transpose16<Isa>(gb + p0, g.L, scratch + p0 * kWide, kWide);
      for (; p0 < g.L; ++p0)
        for (int64_t o = 0; o < kWide; ++o) scratch[p0 * kWide + o] = gb[o * g.L + p0];
      const int64_t n = ws->terms_of(x + b * g.C * hw, g);
      const Term* terms = ws->terms.data();
      for (int64_t k = 0; k < n; ++k) {
        float* a = acc + (terms[k].tap * g.OW + terms[k].ox) * kWide;
        const Wide::Vec term =
            Wide::load(scratch + terms[k].pos * kWide) * Wide::splat(terms[k].value);
        Wide::store(a, Wide::load(a) + term);
      }
    }
  }
};

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
  if (wide_kernels_fit(g)) {
    WideWorkspace& ws = wide_workspace(g);
    float* taps = ws.taps.data(g.C * 9 * kWide);
    for (int64_t o = 0; o < kWide; ++o)
      for (int64_t t = 0; t < g.C * 9; ++t) taps[t * kWide + o] = weight[o * g.C * 9 + t];
    dispatch_isa<ForwardWide>(x, static_cast<const float*>(taps), bias, &g, int64_t{0}, B,
                              ws.scratch.data(g.L * kWide), &ws, out);
    return;
  }
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * g.pad));
  dispatch_isa<ForwardRows>(x, weight, bias, &g, int64_t{0}, B, padded.data(), out);
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
  if (wide_kernels_fit(g)) {
    WideWorkspace& ws = wide_workspace(g);
    float* wide_acc = ws.acc.data(g.C * 9 * g.OW * kWide);
    std::fill(wide_acc, wide_acc + g.C * 9 * g.OW * kWide, 0.0f);
    dispatch_isa<WeightGradWide>(static_cast<const float*>(in.data_ptr<float>()),
                                 static_cast<const float*>(gr.data_ptr<float>()), &g, begin, end,
                                 ws.scratch.data(g.L * kWide), &ws, wide_acc);
    // acc is [C*9, OW, 16]; dw[o, tap] sums over ox in the row kernels' order.
    for (int64_t o = 0; o < kWide; ++o)
      for (int64_t t = 0; t < g.C * 9; ++t) {
        float sum = 0.0f;
        for (int64_t ox = 0; ox < g.OW; ++ox) sum += wide_acc[(t * g.OW + ox) * kWide + o];
        d[o * g.C * 9 + t] = sum;
      }
    return dw;
  }
  std::vector<float> acc(static_cast<size_t>(g.O * g.C * 9 * g.OW), 0.0f);
  std::vector<float> padded(static_cast<size_t>(g.W + 2 * pad));
  dispatch_isa<WeightGradRows>(static_cast<const float*>(in.data_ptr<float>()),
                               static_cast<const float*>(gr.data_ptr<float>()), &g, begin, end,
                               padded.data(), acc.data());
  for (int64_t t = 0; t < g.O * g.C * 9; ++t) {
    float sum = 0.0f;
    for (int64_t ox = 0; ox < g.OW; ++ox) sum += acc[t * g.OW + ox];
    d[t] = sum;
  }
  return dw;
}

}  // namespace stoch::models
