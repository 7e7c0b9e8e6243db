// Built with -ffp-contract=off: no clone fuses a multiply into an add, so every clone (and the
// 16-lane vectors each reads a row in) rounds alike.
#include "value/categorical_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/cpu_isa.h"
#include "core/simd.h"

namespace stoch::value {
namespace {

// Sixteen lanes in every clone: the lane a value lands in, and so the order of every sum, does
// not depend on the CPU.
constexpr int64_t W = 16;

// Sixteen lanes held as P native vectors of N lanes (one AVX-512 register, two AVX2 ones, four
// SSE2 ones). Narrower clones get no 16-lane generic vectors: GCC lowers their shuffles and
// masks lane by lane through the stack, which made the AVX2 clone five times slower than the
// AVX-512 one.
template <class Isa>
struct Lanes {
  static constexpr int N = Isa::kFloatLanes;
  static constexpr int P = static_cast<int>(W) / N;
  using S = simd::Simd<N>;
  using V = typename S::Vec;

  V part[P];

  STOCH_ALWAYS_INLINE static Lanes load(const float* p) {
    Lanes r;
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) r.part[k] = S::load(p + k * N);
    return r;
  }
  STOCH_ALWAYS_INLINE void store(float* p) const {
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) S::store(p + k * N, part[k]);
  }
  STOCH_ALWAYS_INLINE static Lanes splat(float x) {
    Lanes r;
    const V v = S::splat(x);
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) r.part[k] = v;
    return r;
  }
  STOCH_ALWAYS_INLINE static Lanes zero() {
    return splat(0.0f);
  }

  template <class F>
  STOCH_ALWAYS_INLINE static Lanes map(const Lanes& a, const Lanes& b, F f) {
    Lanes r;
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) r.part[k] = f(a.part[k], b.part[k]);
    return r;
  }
  STOCH_ALWAYS_INLINE friend Lanes operator+(const Lanes& a, const Lanes& b) {
    return map(a, b, [](V x, V y) { return x + y; });
  }
  STOCH_ALWAYS_INLINE friend Lanes operator-(const Lanes& a, const Lanes& b) {
    return map(a, b, [](V x, V y) { return x - y; });
  }
  STOCH_ALWAYS_INLINE friend Lanes operator*(const Lanes& a, const Lanes& b) {
    return map(a, b, [](V x, V y) { return x * y; });
  }
  STOCH_ALWAYS_INLINE friend Lanes operator/(const Lanes& a, const Lanes& b) {
    return map(a, b, [](V x, V y) { return x / y; });
  }
  STOCH_ALWAYS_INLINE Lanes& operator+=(const Lanes& b) {
    return *this = *this + b;
  }
  // a > b ? a : b lane by lane (the first operand's NaN gives way to the second).
  STOCH_ALWAYS_INLINE static Lanes vmax(const Lanes& a, const Lanes& b) {
    return map(a, b, [](V x, V y) { return S::vmax(x, y); });
  }
  STOCH_ALWAYS_INLINE static Lanes exp_nonpositive(const Lanes& a) {
    Lanes r;
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) r.part[k] = S::exp_nonpositive(a.part[k]);
    return r;
  }
  // The lanes of chunk c that lie inside a row of m; 0 in the others.
  STOCH_ALWAYS_INLINE Lanes inside(int64_t c, int64_t m) const {
    Lanes r;
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k)
      r.part[k] = S::lane_index() + static_cast<int32_t>(c * W + k * N) < static_cast<int32_t>(m)
                      ? part[k]
                      : V{};
    return r;
  }

  // Lane 0 of a tree of halves over the 16 lanes: lane l combines with lane l + h for h = 8, 4,
  // 2, 1, the first operand the lower lane. Across native vectors while h >= N, then inside one
  // by shuffles: the same operations in the same order in every clone.
  template <bool kMax>
  STOCH_ALWAYS_INLINE float tree() const {
    auto combine = [](V a, V b) {
      if constexpr (kMax) return S::vmax(a, b);
      return a + b;
    };
    V p[P];
#pragma GCC unroll 4
    for (int k = 0; k < P; ++k) p[k] = part[k];
#pragma GCC unroll 4
    for (int h = P / 2; h >= 1; h /= 2)
#pragma GCC unroll 4
      for (int k = 0; k < h; ++k) p[k] = combine(p[k], p[k + h]);
    V v = p[0];
    if constexpr (N >= 16) v = combine(v, __builtin_shuffle(v, rotated<8>()));
    if constexpr (N >= 8) v = combine(v, __builtin_shuffle(v, rotated<4>()));
    v = combine(v, __builtin_shuffle(v, rotated<2>()));
    v = combine(v, __builtin_shuffle(v, rotated<1>()));
    return v[0];
  }
  STOCH_ALWAYS_INLINE float sum() const {
    return tree<false>();
  }
  STOCH_ALWAYS_INLINE float max() const {
    return tree<true>();
  }

 private:
  template <int H, size_t... L>
  static constexpr typename S::IVec rotated(std::index_sequence<L...>) {
    return typename S::IVec{static_cast<int32_t>((L + H) % N)...};
  }
  template <int H>
  static constexpr typename S::IVec rotated() {
    return rotated<H>(std::make_index_sequence<N>());
  }
};

// Whole 16-float chunks that hold a row of m.
constexpr int64_t chunks_of(int64_t m) {
  return (m + W - 1) / W;
}

// A row of m floats copied into whole chunks whose lanes past the row's end hold `pad`, so that
// every pass reads whole vectors (a row of 51 bins is 3 chunks and 3 floats).
class PaddedRow {
 public:
  PaddedRow(int64_t m, float pad) : m_(m), buf_(static_cast<size_t>(chunks() * W), pad) {}
  int64_t chunks() const { return chunks_of(m_); }
  const float* fill(const float* row) {
    std::copy(row, row + m_, buf_.begin());
    return buf_.data();
  }
  float* data() { return buf_.data(); }
  void copy_out(float* row) const { std::copy(buf_.begin(), buf_.begin() + m_, row); }

 private:
  int64_t m_;
  std::vector<float> buf_;
};

// The softmax numerators exp(x - max) of a padded row x (pad -inf), chunk by chunk, lanes past
// the row's end 0, handed to `use(c, e)`; sets the row's max and the numerators' sum (NaN where a
// logit is NaN or +inf).
template <class L, class Use>
STOCH_ALWAYS_INLINE void softmax_numerators(const float* x, int64_t m, float& row_max, float& sum,
                                            Use use) {
  const int64_t chunks = chunks_of(m);
  L mx = L::load(x);
  for (int64_t c = 1; c < chunks; ++c) mx = L::vmax(mx, L::load(x + c * W));
  row_max = mx.max();  // may pass over a NaN, whose own numerator is then NaN
  const L shift = L::splat(row_max);
  L total = L::zero();
  for (int64_t c = 0; c < chunks; ++c) {
    const L e = L::exp_nonpositive(L::load(x + c * W) - shift).inside(c, m);
    total += e;
    use(c, e);
  }
  sum = total.sum();
}

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

struct ExpectationKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, int64_t rows, int64_t m,
                                      const float* support, float* out) {
    using L = Lanes<Isa>;
    PaddedRow x(m, kMinusInf), z(m, 0.0f);
    const float* zp = z.fill(support);
    for (int64_t r = 0; r < rows; ++r) {
      L weighted = L::zero();
      float row_max = 0, sum = 0;
      softmax_numerators<L>(x.fill(logits + r * m), m, row_max, sum,
                            [&](int64_t c, const L& e) { weighted += e * L::load(zp + c * W); });
      out[r] = weighted.sum() / sum;
    }
  }
};

struct SoftmaxKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, int64_t rows, int64_t m, float* out) {
    using L = Lanes<Isa>;
    PaddedRow x(m, kMinusInf), e(m, 0.0f);
    float* ep = e.data();
    for (int64_t r = 0; r < rows; ++r) {
      float row_max = 0, sum = 0;
      softmax_numerators<L>(x.fill(logits + r * m), m, row_max, sum,
                            [&](int64_t c, const L& v) { v.store(ep + c * W); });
      const L total = L::splat(sum);
      for (int64_t c = 0; c < e.chunks(); ++c) (L::load(ep + c * W) / total).store(ep + c * W);
      e.copy_out(out + r * m);
    }
  }
};

struct CrossEntropyKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, const int64_t* index, int64_t rows,
                                      int64_t m, const float* target, float* loss, float* grad) {
    using L = Lanes<Isa>;
    PaddedRow x(m, kMinusInf), p(m, 0.0f), g(m, 0.0f);
    float* gp = g.data();
    for (int64_t r = 0; r < rows; ++r) {
      const float* xp = x.fill(logits + index[r] * m);
      const float* pp = p.fill(target + r * m);
      float row_max = 0, sum = 0;
      softmax_numerators<L>(xp, m, row_max, sum,
                            [&](int64_t c, const L& e) { e.store(gp + c * W); });
      // -sum_j p_j log softmax_j = sum_j p_j (max - x_j) + (sum_j p_j) log(sum): every term >= 0.
      L mass = L::zero(), gap = L::zero();
      const L top = L::splat(row_max);
      for (int64_t c = 0; c < x.chunks(); ++c) {
        const L pc = L::load(pp + c * W);
        mass += pc;
        gap += (pc * (top - L::load(xp + c * W))).inside(c, m);  // 0 * inf past the row's end
      }
      const float p_sum = mass.sum();
      loss[r] = gap.sum() + p_sum * std::log(sum);
      const L scale = L::splat(p_sum / sum);
      for (int64_t c = 0; c < x.chunks(); ++c)
        (L::load(gp + c * W) * scale - L::load(pp + c * W)).store(gp + c * W);
      g.copy_out(grad + r * m);
    }
  }
};

}  // namespace

void expectation_rows(const float* logits, int64_t rows, int64_t m, const float* support,
                      float* out) {
  dispatch_isa<ExpectationKernel>(logits, rows, m, support, out);
}

void softmax_rows(const float* logits, int64_t rows, int64_t m, float* out) {
  dispatch_isa<SoftmaxKernel>(logits, rows, m, out);
}

void cross_entropy_rows(const float* logits, const int64_t* index, int64_t rows, int64_t m,
                        const float* target, float* loss, float* grad) {
  dispatch_isa<CrossEntropyKernel>(logits, index, rows, m, target, loss, grad);
}

}  // namespace stoch::value
