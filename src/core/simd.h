// GCC's generic vectors of 16, 8 or 4 floats and the always-inline operations stoch's kernels
// build on. Included by kernels that dispatch per clone (core/cpu_isa.h): inlined into a clone,
// each operation compiles to that clone's instructions (a 16-float vector is one AVX-512
// register, two AVX2 ones or four SSE2 ones). No LibTorch here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/cpu_isa.h"

// Vectors passed by value between always-inline functions: no call, so no ABI to warn about.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace stoch::simd {

// Vectors of W floats, of W lanes of int32 (masks, shuffles) and unaligned views. Spelt out per
// width: GCC 12 does not take a vector_size that depends on a template parameter.
template <int W>
struct VectorTypes;
#define STOCH_VECTOR_TYPES(W)                                                      \
  template <>                                                                      \
  struct VectorTypes<W> {                                                          \
    typedef float Vec __attribute__((vector_size(W * 4)));                         \
    typedef int32_t IVec __attribute__((vector_size(W * 4)));                      \
    typedef float VecU __attribute__((vector_size(W * 4), aligned(4), may_alias)); \
  };
STOCH_VECTOR_TYPES(16)
STOCH_VECTOR_TYPES(8)
STOCH_VECTOR_TYPES(4)
#undef STOCH_VECTOR_TYPES

// What the kernels do with vectors of W floats.
template <int W>
struct Simd {
  using Vec = typename VectorTypes<W>::Vec;
  using IVec = typename VectorTypes<W>::IVec;
  using VecU = typename VectorTypes<W>::VecU;

  STOCH_ALWAYS_INLINE static Vec load(const float* p) { return *reinterpret_cast<const VecU*>(p); }
  STOCH_ALWAYS_INLINE static void store(float* p, Vec x) { *reinterpret_cast<VecU*>(p) = x; }
  // A shuffle of lane 0, not Vec{x, x, ...}: inside a target clone GCC 12 builds the latter from
  // masked inserts, one per lane.
  STOCH_ALWAYS_INLINE static Vec splat(float x) { return __builtin_shuffle(Vec{x}, IVec{}); }
  STOCH_ALWAYS_INLINE static Vec vmax(Vec a, Vec b) { return a > b ? a : b; }

  template <size_t... L>
  static constexpr IVec lanes(std::index_sequence<L...>) {
    return IVec{static_cast<int32_t>(L)...};
  }
  static constexpr IVec lane_index() { return lanes(std::make_index_sequence<W>()); }

  STOCH_ALWAYS_INLINE static float horizontal_max(Vec x) {
    float m = x[0];
    for (int l = 1; l < W; ++l) m = std::max(m, x[l]);
    return m;
  }
  STOCH_ALWAYS_INLINE static float horizontal_sum(Vec x) {
    float s = 0.0f;
    for (int l = 0; l < W; ++l) s += x[l];
    return s;
  }

  // e^x for x <= 0 (softmax arguments after subtracting the row's max): x = n ln2 + r with
  // |r| <= ln2 / 2, e^r by its Taylor series to r^7 (error below 6e-9), times 2^n from the
  // exponent bits. Arguments below -87 give e^-87, which nothing downstream can tell from 0.
  STOCH_ALWAYS_INLINE static Vec exp_nonpositive(Vec x) {
    x = x < splat(-87.0f) ? splat(-87.0f) : x;
    const Vec n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
    Vec r = x - n * 0.693359375f;                                 // ln 2, split in two so that
    r = r + n * 2.12194440e-4f;                                   // n ln2 loses no bits
    Vec p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const IVec bits = (__builtin_convertvector(n, IVec) + 127) << 23;
    return p * reinterpret_cast<Vec>(bits);
  }

  // Shuffle masks of one transpose step (below): lanes with bit K clear stay in `low`'s first
  // operand; lanes with it set come from the second operand's lane l - K (and the reverse for
  // `high`).
  template <int K, size_t... L>
  static constexpr IVec low_mask(std::index_sequence<L...>) {
    return IVec{static_cast<int32_t>((L & K) ? L - K + W : L)...};
  }
  template <int K, size_t... L>
  static constexpr IVec high_mask(std::index_sequence<L...>) {
    return IVec{static_cast<int32_t>((L & K) ? L + W : L + K)...};
  }

  // One step of a W x W transpose held in W registers: for each pair of rows (r, r + K) with
  // bit K of r clear, row r's lanes with bit K set trade places with row r + K's lanes without
  // it. Steps K = W/2, ..., 2, 1 transpose the whole block.
  template <int K>
  STOCH_ALWAYS_INLINE static void transpose_step(Vec* m) {
    constexpr IVec low = low_mask<K>(std::make_index_sequence<W>());
    constexpr IVec high = high_mask<K>(std::make_index_sequence<W>());
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r) {
      if (r & K) continue;
      const Vec a = m[r], b = m[r + K];
      m[r] = __builtin_shuffle(a, b, low);
      m[r + K] = __builtin_shuffle(a, b, high);
    }
  }
  template <int K>
  STOCH_ALWAYS_INLINE static void transpose(Vec* m) {
    if constexpr (K >= 1) {
      transpose_step<K>(m);
      transpose<K / 2>(m);
    }
  }
};

}  // namespace stoch::simd
