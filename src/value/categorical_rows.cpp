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

// Sixteen lanes in every clone (one AVX-512 register, two AVX2 ones, four SSE2 ones): the lane
// a value lands in, and so the order of every sum, does not depend on the CPU.
constexpr int64_t W = 16;
using S = simd::Simd<W>;
using Vec = S::Vec;

// Sums (or the max) of a vector's lanes as a tree of halves: four dependent steps instead of
// fifteen, in one order whatever registers the clone holds the vector in.
template <int H, size_t... L>
constexpr S::IVec rotated(std::index_sequence<L...>) {
  return S::IVec{static_cast<int32_t>((L + H) % W)...};
}
template <bool kMax>
STOCH_ALWAYS_INLINE Vec combine(Vec a, Vec b) {
  if constexpr (kMax) return S::vmax(a, b);
  return a + b;
}
template <bool kMax>
STOCH_ALWAYS_INLINE float tree_reduce(Vec v) {
  constexpr auto lanes = std::make_index_sequence<W>();
  v = combine<kMax>(v, __builtin_shuffle(v, rotated<8>(lanes)));
  v = combine<kMax>(v, __builtin_shuffle(v, rotated<4>(lanes)));
  v = combine<kMax>(v, __builtin_shuffle(v, rotated<2>(lanes)));
  v = combine<kMax>(v, __builtin_shuffle(v, rotated<1>(lanes)));
  return v[0];
}
STOCH_ALWAYS_INLINE float lane_sum(Vec v) {
  return tree_reduce<false>(v);
}
STOCH_ALWAYS_INLINE float lane_max(Vec v) {
  return tree_reduce<true>(v);
}

// Whole 16-float chunks that hold a row of m.
constexpr int64_t chunks_of(int64_t m) {
  return (m + W - 1) / W;
}

// Lanes of chunk c inside a row of m, as a mask.
STOCH_ALWAYS_INLINE auto inside(int64_t c, int64_t m) {
  return S::lane_index() + static_cast<int32_t>(c * W) < static_cast<int32_t>(m);
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
template <class Use>
STOCH_ALWAYS_INLINE void softmax_numerators(const float* x, int64_t m, float& row_max, float& sum,
                                            Use use) {
  const int64_t chunks = chunks_of(m);
  Vec mx = S::load(x);
  for (int64_t c = 1; c < chunks; ++c) mx = S::vmax(mx, S::load(x + c * W));
  row_max = lane_max(mx);  // may pass over a NaN, whose own numerator is then NaN
  Vec total{};
  for (int64_t c = 0; c < chunks; ++c) {
    Vec e = S::exp_nonpositive(S::load(x + c * W) - row_max);
    e = inside(c, m) ? e : Vec{};
    total += e;
    use(c, e);
  }
  sum = lane_sum(total);
}

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

struct ExpectationKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, int64_t rows, int64_t m,
                                      const float* support, float* out) {
    PaddedRow x(m, kMinusInf), z(m, 0.0f);
    const float* zp = z.fill(support);
    for (int64_t r = 0; r < rows; ++r) {
      Vec weighted{};
      float row_max = 0, sum = 0;
      softmax_numerators(x.fill(logits + r * m), m, row_max, sum,
                         [&](int64_t c, Vec e) { weighted += e * S::load(zp + c * W); });
      out[r] = lane_sum(weighted) / sum;
    }
  }
};

struct SoftmaxKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, int64_t rows, int64_t m, float* out) {
    PaddedRow x(m, kMinusInf), e(m, 0.0f);
    float* ep = e.data();
    for (int64_t r = 0; r < rows; ++r) {
      float row_max = 0, sum = 0;
      softmax_numerators(x.fill(logits + r * m), m, row_max, sum,
                         [&](int64_t c, Vec v) { S::store(ep + c * W, v); });
      const Vec total = S::splat(sum);
      for (int64_t c = 0; c < e.chunks(); ++c) S::store(ep + c * W, S::load(ep + c * W) / total);
      e.copy_out(out + r * m);
    }
  }
};

struct CrossEntropyKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(const float* logits, const int64_t* index, int64_t rows,
                                      int64_t m, const float* target, float* loss, float* grad) {
    PaddedRow x(m, kMinusInf), p(m, 0.0f), g(m, 0.0f);
    float* gp = g.data();
    for (int64_t r = 0; r < rows; ++r) {
      const float* xp = x.fill(logits + index[r] * m);
      const float* pp = p.fill(target + r * m);
      float row_max = 0, sum = 0;
      softmax_numerators(xp, m, row_max, sum, [&](int64_t c, Vec e) { S::store(gp + c * W, e); });
      // -sum_j p_j log softmax_j = sum_j p_j (max - x_j) + (sum_j p_j) log(sum): every term >= 0.
      Vec mass{}, gap{};
      for (int64_t c = 0; c < x.chunks(); ++c) {
        const Vec pc = S::load(pp + c * W);
        const Vec term = pc * (S::splat(row_max) - S::load(xp + c * W));
        mass += pc;
        gap += inside(c, m) ? term : Vec{};  // 0 * inf past the row's end
      }
      const float p_sum = lane_sum(mass);
      loss[r] = lane_sum(gap) + p_sum * std::log(sum);
      const Vec scale = S::splat(p_sum / sum);
      for (int64_t c = 0; c < x.chunks(); ++c)
        S::store(gp + c * W, S::load(gp + c * W) * scale - S::load(pp + c * W));
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
