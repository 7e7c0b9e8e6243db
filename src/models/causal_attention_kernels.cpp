#include "models/causal_attention_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/vector_clones.h"

// GCC's generic vectors: each STOCH_VECTOR_CLONES function below is compiled for AVX-512 (one
// register per 16 floats), AVX2 and the baseline, and its always-inline helpers with it.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace stoch::models {
namespace {

constexpr int64_t kLanes = 16;
typedef float Vec __attribute__((vector_size(64)));
typedef int32_t IVec __attribute__((vector_size(64)));
typedef float VecU __attribute__((vector_size(64), aligned(4), may_alias));

#define STOCH_INLINE inline __attribute__((always_inline))

STOCH_INLINE Vec load(const float* p) {
  return *reinterpret_cast<const VecU*>(p);
}
STOCH_INLINE void store(float* p, Vec x) {
  *reinterpret_cast<VecU*>(p) = x;
}
// A shuffle of lane 0, not Vec{x, x, ...}: inside a target clone GCC 12 builds the latter from
// masked inserts, one per lane.
STOCH_INLINE Vec splat(float x) {
  return __builtin_shuffle(Vec{x}, IVec{});
}
STOCH_INLINE Vec vmax(Vec a, Vec b) {
  return a > b ? a : b;
}
STOCH_INLINE IVec lane_index() {
  return IVec{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
}

STOCH_INLINE float horizontal_max(Vec x) {
  float m = x[0];
  for (int l = 1; l < kLanes; ++l) m = std::max(m, x[l]);
  return m;
}

STOCH_INLINE float horizontal_sum(Vec x) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += x[l];
  return s;
}

// e^x for x <= 0 (softmax arguments after subtracting the row's max): x = n ln2 + r with
// |r| <= ln2 / 2, e^r by its Taylor series to r^7 (error below 6e-9), times 2^n from the
// exponent bits. Arguments below -87 give e^-87, which nothing downstream can tell from 0.
STOCH_INLINE Vec exp_nonpositive(Vec x) {
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

constexpr int64_t round_up(int64_t n) {
  return (n + kLanes - 1) / kLanes * kLanes;
}

// Rows per tile of the products over T: R rows x D/16 registers of accumulators, at most 16.
constexpr int mix_rows(int nd) {
  return nd <= 2 ? 8 : nd <= 4 ? 4 : 2;
}

// out[r][col0 + j] = scale * sum_d a[r][d] * bt[d][col0 + j] for j < 16 C: a tile of the scores
// q k^T (or of grad_o v^T) from rows of a and the transposed other side.
template <int R, int C>
STOCH_INLINE void scores_tile(const float* const* a, const float* bt, int64_t ldbt, int64_t D,
                              int64_t col0, float* out, int64_t ldo, float scale) {
  Vec acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = Vec{};
  for (int64_t d = 0; d < D; ++d) {
    const float* b = bt + d * ldbt + col0;
    Vec bv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) bv[c] = load(b + kLanes * c);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Vec av = splat(a[r][d]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] += av * bv[c];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) store(out + r * ldo + col0 + kLanes * c, acc[r][c] * scale);
}

// Rows per tile of the scores (each against up to 4 registers of columns).
constexpr int kScoreRows = 4;

// Scores of rows [i0, i0 + kScoreRows) against columns [0, i0 + kScoreRows) (rounded up to whole
// registers): the causal lower triangle and the few masked entries beside the diagonal. Rows
// past T repeat row T - 1 into the padding rows of out.
STOCH_INLINE void scores_rows(HeadRows a, int64_t i0, int64_t T, const float* bt, int64_t ldbt,
                              int64_t D, float scale, float* out, int64_t ldo) {
  constexpr int R = kScoreRows;
  const float* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a.data + std::min<int64_t>(i0 + r, T - 1) * a.stride;
  const int64_t chunks = round_up(std::min<int64_t>(i0 + R, T)) / kLanes;
  int64_t c = 0;
  for (; c + 4 <= chunks; c += 4) scores_tile<R, 4>(rows, bt, ldbt, D, c * kLanes, out, ldo, scale);
  for (; c < chunks; ++c) scores_tile<R, 1>(rows, bt, ldbt, D, c * kLanes, out, ldo, scale);
}

// out[r] = sum_{t0 <= t < t1} a[r * a_rs + t * a_ts] * b[t] for R rows of D = 16 ND
// floats: probabilities (or score gradients) times values, keys or queries. With (a_rs, a_ts) =
// (ld, 1) a is read by rows (p v); with (1, ld) by columns (p^T grad_o), with no transpose.
template <int R, int ND>
STOCH_INLINE void mix_tile(const float* a, int64_t a_rs, int64_t a_ts, HeadRows b, int64_t t0,
                           int64_t t1, float* const* out) {
  Vec acc[R][ND];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int n = 0; n < ND; ++n) acc[r][n] = Vec{};
  for (int64_t t = t0; t < t1; ++t) {
    const float* bt = b.data + t * b.stride;
    Vec bv[ND];
#pragma GCC unroll 8
    for (int n = 0; n < ND; ++n) bv[n] = load(bt + kLanes * n);
    const float* at = a + t * a_ts;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Vec av = splat(at[r * a_rs]);
#pragma GCC unroll 8
      for (int n = 0; n < ND; ++n) acc[r][n] += av * bv[n];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int n = 0; n < ND; ++n) store(out[r] + kLanes * n, acc[r][n]);
}

// The rows [i0, i0 + R) of out, or `spare` for rows past T (their results are dropped).
template <int R>
STOCH_INLINE void output_rows(float* out, int64_t stride, int64_t i0, int64_t T, float* spare,
                              float** rows) {
  for (int r = 0; r < R; ++r) rows[r] = i0 + r < T ? out + (i0 + r) * stride : spare;
}

// One step of a 16 x 16 transpose held in 16 registers: for each pair of rows (r, r + K) with
// bit K of r clear, row r's lanes with bit K set trade places with row r + K's lanes without
// it. Steps K = 8, 4, 2, 1 transpose the whole block; each step is 16 two-register shuffles.
template <int K>
STOCH_INLINE void transpose_step(Vec* m, IVec low, IVec high) {
#pragma GCC unroll 16
  for (int r = 0; r < kLanes; ++r) {
    if (r & K) continue;
    const Vec a = m[r], b = m[r + K];
    m[r] = __builtin_shuffle(a, b, low);
    m[r + K] = __builtin_shuffle(a, b, high);
  }
}

// bt[d][j] = rows[j][d] for j < T, zero for T <= j < ldbt (a multiple of 16).
STOCH_INLINE void transpose_rows(HeadRows rows, int64_t T, int64_t D, float* bt, int64_t ldbt) {
  for (int64_t j0 = 0; j0 < ldbt; j0 += kLanes)
    for (int64_t d0 = 0; d0 < D; d0 += kLanes) {
      Vec m[kLanes];
#pragma GCC unroll 16
      for (int r = 0; r < kLanes; ++r)
        m[r] = j0 + r < T ? load(rows.data + (j0 + r) * rows.stride + d0) : Vec{};
      transpose_step<8>(m, IVec{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                        IVec{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
      transpose_step<4>(m, IVec{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                        IVec{4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
      transpose_step<2>(m, IVec{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                        IVec{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
      transpose_step<1>(m, IVec{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
                        IVec{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
#pragma GCC unroll 16
      for (int r = 0; r < kLanes; ++r) store(bt + (d0 + r) * ldbt + j0, m[r]);
    }
}

// Row i of the scores becomes row i of the probabilities in place: the causal softmax over
// columns [0, i], zeros from i + 1 to the row's end. Returns the row's log-sum-exp.
STOCH_INLINE float softmax_row(float* row, int64_t i, int64_t ld) {
  const int64_t last = i / kLanes;
  const auto valid = lane_index() + static_cast<int32_t>(last * kLanes) <= static_cast<int32_t>(i);
  const Vec minus_inf = splat(-std::numeric_limits<float>::infinity());
  Vec m = minus_inf;
  for (int64_t c = 0; c < last; ++c) m = vmax(m, load(row + c * kLanes));
  m = vmax(m, valid ? load(row + last * kLanes) : minus_inf);
  const float row_max = horizontal_max(m);
  Vec sum = Vec{};
  for (int64_t c = 0; c <= last; ++c) {
    Vec e = exp_nonpositive(load(row + c * kLanes) - row_max);
    if (c == last) e = valid ? e : Vec{};
    store(row + c * kLanes, e);
    sum += e;
  }
  for (int64_t c = last + 1; c < ld / kLanes; ++c) store(row + c * kLanes, Vec{});
  const float total = horizontal_sum(sum);
  const float inv = 1.0f / total;
  for (int64_t c = 0; c <= last; ++c) store(row + c * kLanes, load(row + c * kLanes) * inv);
  return row_max + std::log(total);
}

// Backward, row i: p = exp(s - lse) recomputed from the scores, then in place of grad_p the
// scaled score gradient scale * p (grad_p - delta); both zero past column i.
STOCH_INLINE void gradient_row(float* p, float* ds, int64_t i, int64_t ld, float lse, float delta,
                               float scale) {
  const int64_t last = i / kLanes;
  const auto valid = lane_index() + static_cast<int32_t>(last * kLanes) <= static_cast<int32_t>(i);
  for (int64_t c = 0; c <= last; ++c) {
    Vec pc = exp_nonpositive(load(p + c * kLanes) - lse);
    Vec dc = pc * (load(ds + c * kLanes) - delta) * scale;
    if (c == last) {
      pc = valid ? pc : Vec{};
      dc = valid ? dc : Vec{};
    }
    store(p + c * kLanes, pc);
    store(ds + c * kLanes, dc);
  }
  for (int64_t c = last + 1; c < ld / kLanes; ++c) {
    store(p + c * kLanes, Vec{});
    store(ds + c * kLanes, Vec{});
  }
}

struct ForwardHead {
  template <int ND>
  STOCH_INLINE static void run(HeadRows q, HeadRows k, HeadRows v, int64_t T, float scale, float* o,
                               int64_t o_stride, float* lse, float* buffer) {
    constexpr int64_t D = kLanes * ND;
    constexpr int R = mix_rows(ND);
    const int64_t ld = round_up(T);
    float* kt = buffer;          // [D, ld]
    float* p = kt + D * ld;      // [ld, ld]
    float* spare = p + ld * ld;  // [D]
    transpose_rows(k, T, D, kt, ld);
    for (int64_t i0 = 0; i0 < T; i0 += kScoreRows) {
      scores_rows(q, i0, T, kt, ld, D, scale, p + i0 * ld, ld);
      for (int64_t i = i0; i < std::min<int64_t>(i0 + kScoreRows, T); ++i)
        lse[i] = softmax_row(p + i * ld, i, ld);
    }
    float* rows[R];
    for (int64_t i0 = 0; i0 < T; i0 += R) {
      output_rows<R>(o, o_stride, i0, T, spare, rows);
      mix_tile<R, ND>(p + i0 * ld, ld, 1, v, 0, std::min<int64_t>(i0 + R, T), rows);
    }
  }
};

struct BackwardHead {
  template <int ND>
  STOCH_INLINE static void run(HeadRows q, HeadRows k, HeadRows v, HeadRows o, HeadRows grad_o,
                               const float* lse, int64_t T, float scale, float* grad_q,
                               float* grad_k, float* grad_v, int64_t grad_stride, float* buffer) {
    constexpr int64_t D = kLanes * ND;
    constexpr int R = mix_rows(ND);
    const int64_t ld = round_up(T);
    float* kt = buffer;           // [D, ld]
    float* vt = kt + D * ld;      // [D, ld]
    float* p = vt + D * ld;       // [ld, ld]
    float* ds = p + ld * ld;      // [ld, ld]
    float* delta = ds + ld * ld;  // [ld]
    float* spare = delta + ld;    // [D]
    transpose_rows(k, T, D, kt, ld);
    transpose_rows(v, T, D, vt, ld);
    for (int64_t i = 0; i < T; ++i) {
      const float* go = grad_o.data + i * grad_o.stride;
      const float* oi = o.data + i * o.stride;
      Vec acc = Vec{};
      for (int n = 0; n < ND; ++n) acc += load(go + kLanes * n) * load(oi + kLanes * n);
      delta[i] = horizontal_sum(acc);
    }
    for (int64_t i0 = 0; i0 < T; i0 += kScoreRows) {
      scores_rows(q, i0, T, kt, ld, D, scale, p + i0 * ld, ld);
      scores_rows(grad_o, i0, T, vt, ld, D, 1.0f, ds + i0 * ld, ld);
      for (int64_t i = i0; i < std::min<int64_t>(i0 + kScoreRows, T); ++i)
        gradient_row(p + i * ld, ds + i * ld, i, ld, lse[i], delta[i], scale);
    }
    float* rows[R];
    for (int64_t i0 = 0; i0 < T; i0 += R) {
      output_rows<R>(grad_q, grad_stride, i0, T, spare, rows);
      mix_tile<R, ND>(ds + i0 * ld, ld, 1, k, 0, std::min<int64_t>(i0 + R, T), rows);
      // Column block [i0, i0 + R) against rows [i0, T): what lies above the diagonal is zero.
      output_rows<R>(grad_k, grad_stride, i0, T, spare, rows);
      mix_tile<R, ND>(ds + i0, 1, ld, q, i0, T, rows);
      output_rows<R>(grad_v, grad_stride, i0, T, spare, rows);
      mix_tile<R, ND>(p + i0, 1, ld, grad_o, i0, T, rows);
    }
  }
};

// Head::run<ND> for ND = head_dim / 16 registers per row (1 to 8, checked by the caller).
template <class Head, class... Args>
STOCH_INLINE void with_width(int64_t nd, const Args&... args) {
  switch (nd) {
    case 1:
      return Head::template run<1>(args...);
    case 2:
      return Head::template run<2>(args...);
    case 3:
      return Head::template run<3>(args...);
    case 4:
      return Head::template run<4>(args...);
    case 5:
      return Head::template run<5>(args...);
    case 6:
      return Head::template run<6>(args...);
    case 7:
      return Head::template run<7>(args...);
    case 8:
      return Head::template run<8>(args...);
  }
}

STOCH_VECTOR_CLONES
void forward_any(HeadRows q, HeadRows k, HeadRows v, int64_t T, int64_t head_dim, float scale,
                 float* o, int64_t o_stride, float* lse, float* buffer) {
  with_width<ForwardHead>(head_dim / kLanes, q, k, v, T, scale, o, o_stride, lse, buffer);
}

STOCH_VECTOR_CLONES
void backward_any(HeadRows q, HeadRows k, HeadRows v, HeadRows o, HeadRows grad_o, const float* lse,
                  int64_t T, int64_t head_dim, float scale, float* grad_q, float* grad_k,
                  float* grad_v, int64_t grad_stride, float* buffer) {
  with_width<BackwardHead>(head_dim / kLanes, q, k, v, o, grad_o, lse, T, scale, grad_q, grad_k,
                           grad_v, grad_stride, buffer);
}

float* scratch_for(AttentionScratch& scratch, size_t floats) {
  if (scratch.buffer.size() < floats) scratch.buffer.resize(floats);
  return scratch.buffer.data();
}

}  // namespace

bool causal_attention_head_dim_supported(int64_t head_dim) {
  return head_dim > 0 && head_dim % kLanes == 0 && head_dim <= 8 * kLanes;
}

void causal_attention_head_forward(HeadRows q, HeadRows k, HeadRows v, int64_t T, int64_t head_dim,
                                   float scale, float* o, int64_t o_stride, float* lse,
                                   AttentionScratch& scratch) {
  const int64_t ld = round_up(T);
  float* buffer = scratch_for(scratch, static_cast<size_t>(head_dim * ld + ld * ld + head_dim));
  forward_any(q, k, v, T, head_dim, scale, o, o_stride, lse, buffer);
}

void causal_attention_head_backward(HeadRows q, HeadRows k, HeadRows v, HeadRows o, HeadRows grad_o,
                                    const float* lse, int64_t T, int64_t head_dim, float scale,
                                    float* grad_q, float* grad_k, float* grad_v,
                                    int64_t grad_stride, AttentionScratch& scratch) {
  const int64_t ld = round_up(T);
  float* buffer =
      scratch_for(scratch, static_cast<size_t>(2 * head_dim * ld + 2 * ld * ld + ld + head_dim));
  backward_any(q, k, v, o, grad_o, lse, T, head_dim, scale, grad_q, grad_k, grad_v, grad_stride,
               buffer);
}

}  // namespace stoch::models
