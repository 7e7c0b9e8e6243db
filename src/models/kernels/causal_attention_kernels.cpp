#include "models/kernels/causal_attention_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/cpu_isa.h"
#include "core/simd.h"

// Each kernel below is compiled once per clone (core/cpu_isa.h) with the vector width and
// register tiles of that clone, and its always-inline helpers (core/simd.h) with it.

namespace stoch::models {
namespace {

// Rows are padded to whole blocks of this many floats whatever the clone's width (16, 8 or 4
// lanes all divide it), so scratch sizes do not depend on the clone.
constexpr int64_t kBlock = 16;
// Padding rows after each [T, T] matrix: row tiles past T read them (their results are dropped).
constexpr int64_t kPadRows = 8;

constexpr int64_t round_up(int64_t n) {
  return (n + kBlock - 1) / kBlock * kBlock;
}

// Register tiles per clone. A product tile holds rows x columns accumulators plus one register
// of each operand: AVX-512 has 32 registers of 16 floats, AVX2 and SSE2 16 registers of 8 and 4.
//   score_rows x score_cols: the tile of q k^T (and grad_o v^T) over T columns;
//   mix_rows(nd) x mix_cols(nd): the tile of p v (and its backward) over a row of nd registers.
template <class Isa>
struct Tiles;
template <>
struct Tiles<IsaAvx512> {
  static constexpr int kScoreRows = 4, kScoreCols = 4;
  static constexpr int mix_rows(int nd) { return nd <= 2 ? 8 : nd <= 4 ? 4 : 2; }
  static constexpr int mix_cols(int nd) { return nd; }
};
// 6 x 2 and 4 x 3 tiles leave 3 registers for the operands: what the AVX2 sgemm kernels use.
template <>
struct Tiles<IsaAvx2> {
  static constexpr int kScoreRows = 4, kScoreCols = 3;
  static constexpr int mix_rows(int) { return 6; }
  static constexpr int mix_cols(int) { return 2; }
};
template <>
struct Tiles<IsaPortable> : Tiles<IsaAvx2> {};

// One head's operands and outputs (causal_attention_kernels.h), forward and backward.
struct ForwardArgs {
  HeadRows q, k, v;
  int64_t T, head_dim;
  float scale;
  float* o;
  int64_t o_stride;
  float* lse;
  float* buffer;
};

struct BackwardArgs {
  HeadRows q, k, v, o, grad_o;
  const float* lse;
  int64_t T, head_dim;
  float scale;
  float *grad_q, *grad_k, *grad_v;
  int64_t grad_stride;
  float* buffer;
};

// The kernels of one clone.
template <class Isa>
struct Kernels {
  using Tile = Tiles<Isa>;
  static constexpr int W = Isa::kFloatLanes;
  using S = simd::Simd<W>;
  using Vec = typename S::Vec;

  // out[r][col0 + j] = scale * sum_d a[r][d] * bt[d][col0 + j] for j < W C: a tile of the scores
  // q k^T (or of grad_o v^T) from rows of a and the transposed other side.
  template <int R, int C>
  STOCH_ALWAYS_INLINE static void scores_tile(const float* const* a, const float* bt, int64_t ldbt,
                                              int64_t D, int64_t col0, float* out, int64_t ldo,
                                              float scale) {
    Vec acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = Vec{};
    for (int64_t d = 0; d < D; ++d) {
      const float* b = bt + d * ldbt + col0;
      Vec bv[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) bv[c] = S::load(b + W * c);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Vec av = S::splat(a[r][d]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] += av * bv[c];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) S::store(out + r * ldo + col0 + W * c, acc[r][c] * scale);
  }

  // Scores of rows [i0, i0 + kScoreRows) against columns [0, i0 + kScoreRows) (rounded up to
  // whole registers): the causal lower triangle and the few masked entries beside the diagonal.
  // Rows past T repeat row T - 1 into the padding rows of out.
  STOCH_ALWAYS_INLINE static void scores_rows(HeadRows a, int64_t i0, int64_t T, const float* bt,
                                              int64_t ldbt, int64_t D, float scale, float* out,
                                              int64_t ldo) {
    constexpr int R = Tile::kScoreRows, C = Tile::kScoreCols;
    const float* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a.data + std::min<int64_t>(i0 + r, T - 1) * a.stride;
    const int64_t end = std::min<int64_t>(i0 + R, T);
    const int64_t chunks = (end + W - 1) / W;
    int64_t c = 0;
    for (; c + C <= chunks; c += C) scores_tile<R, C>(rows, bt, ldbt, D, c * W, out, ldo, scale);
    for (; c < chunks; ++c) scores_tile<R, 1>(rows, bt, ldbt, D, c * W, out, ldo, scale);
  }

  // out[r][col0 + j] = sum_{t0 <= t < t1} a[r * a_rs + t * a_ts] * b[t][col0 + j] for R rows and
  // j < W C: probabilities (or score gradients) times values, keys or queries. With
  // (a_rs, a_ts) = (ld, 1) a is read by rows (p v); with (1, ld) by columns (p^T grad_o), with
  // no transpose.
  template <int R, int C>
  STOCH_ALWAYS_INLINE static void mix_tile(const float* a, int64_t a_rs, int64_t a_ts, HeadRows b,
                                           int64_t col0, int64_t t0, int64_t t1,
                                           float* const* out) {
    Vec acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int n = 0; n < C; ++n) acc[r][n] = Vec{};
    for (int64_t t = t0; t < t1; ++t) {
      const float* bt = b.data + t * b.stride + col0;
      Vec bv[C];
#pragma GCC unroll 8
      for (int n = 0; n < C; ++n) bv[n] = S::load(bt + W * n);
      const float* at = a + t * a_ts;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Vec av = S::splat(at[r * a_rs]);
#pragma GCC unroll 8
        for (int n = 0; n < C; ++n) acc[r][n] += av * bv[n];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int n = 0; n < C; ++n) S::store(out[r] + col0 + W * n, acc[r][n]);
  }

  // mix_tile over a whole row of ND registers, in column blocks of the clone's tile.
  template <int R, int ND>
  STOCH_ALWAYS_INLINE static void mix_rows(const float* a, int64_t a_rs, int64_t a_ts, HeadRows b,
                                           int64_t t0, int64_t t1, float* const* out) {
    constexpr int C = Tile::mix_cols(ND);
    static_assert(ND % C == 0, "a row is whole column blocks");
    for (int n = 0; n < ND; n += C) mix_tile<R, C>(a, a_rs, a_ts, b, n * W, t0, t1, out);
  }

  // The rows [i0, i0 + R) of out, or `spare` for rows past T (their results are dropped).
  template <int R>
  STOCH_ALWAYS_INLINE static void output_rows(float* out, int64_t stride, int64_t i0, int64_t T,
                                              float* spare, float** rows) {
    for (int r = 0; r < R; ++r) rows[r] = i0 + r < T ? out + (i0 + r) * stride : spare;
  }

  // bt[d][j] = rows[j][d] for j < T, zero for T <= j < ldbt (a multiple of W).
  STOCH_ALWAYS_INLINE static void transpose_rows(HeadRows rows, int64_t T, int64_t D, float* bt,
                                                 int64_t ldbt) {
    for (int64_t j0 = 0; j0 < ldbt; j0 += W)
      for (int64_t d0 = 0; d0 < D; d0 += W) {
        Vec m[W];
#pragma GCC unroll 16
        for (int r = 0; r < W; ++r)
          m[r] = j0 + r < T ? S::load(rows.data + (j0 + r) * rows.stride + d0) : Vec{};
        S::template transpose<W / 2>(m);
#pragma GCC unroll 16
        for (int r = 0; r < W; ++r) S::store(bt + (d0 + r) * ldbt + j0, m[r]);
      }
  }

  // Row i of the scores becomes row i of the probabilities in place: the causal softmax over
  // columns [0, i], zeros from i + 1 to the row's end. Returns the row's log-sum-exp.
  STOCH_ALWAYS_INLINE static float softmax_row(float* row, int64_t i, int64_t ld) {
    const int64_t last = i / W;
    constexpr auto lanes = S::lane_index();
    const auto valid = lanes + static_cast<int32_t>(last * W) <= static_cast<int32_t>(i);
    const Vec minus_inf = S::splat(-std::numeric_limits<float>::infinity());
    Vec m = minus_inf;
    for (int64_t c = 0; c < last; ++c) m = S::vmax(m, S::load(row + c * W));
    m = S::vmax(m, valid ? S::load(row + last * W) : minus_inf);
    const float row_max = S::horizontal_max(m);
    Vec sum = Vec{};
    for (int64_t c = 0; c <= last; ++c) {
      Vec e = S::exp_nonpositive(S::load(row + c * W) - row_max);
      if (c == last) e = valid ? e : Vec{};
      S::store(row + c * W, e);
      sum += e;
    }
    for (int64_t c = last + 1; c < ld / W; ++c) S::store(row + c * W, Vec{});
    const float total = S::horizontal_sum(sum);
    const float inv = 1.0f / total;
    for (int64_t c = 0; c <= last; ++c) S::store(row + c * W, S::load(row + c * W) * inv);
    return row_max + std::log(total);
  }

  // Backward, row i: p = exp(s - lse) recomputed from the scores, then in place of grad_p the
  // scaled score gradient scale * p (grad_p - delta); both zero past column i.
  STOCH_ALWAYS_INLINE static void gradient_row(float* p, float* ds, int64_t i, int64_t ld,
                                               float lse, float delta, float scale) {
    const int64_t last = i / W;
    constexpr auto lanes = S::lane_index();
    const auto valid = lanes + static_cast<int32_t>(last * W) <= static_cast<int32_t>(i);
    for (int64_t c = 0; c <= last; ++c) {
      Vec pc = S::exp_nonpositive(S::load(p + c * W) - lse);
      Vec dc = pc * (S::load(ds + c * W) - delta) * scale;
      if (c == last) {
        pc = valid ? pc : Vec{};
        dc = valid ? dc : Vec{};
      }
      S::store(p + c * W, pc);
      S::store(ds + c * W, dc);
    }
    for (int64_t c = last + 1; c < ld / W; ++c) {
      S::store(p + c * W, Vec{});
      S::store(ds + c * W, Vec{});
    }
  }

  // Rows [T, T + kPadRows) of an [., ld] matrix: read by row tiles past T, so kept finite.
  STOCH_ALWAYS_INLINE static void clear_padding_rows(float* m, int64_t T, int64_t ld) {
    std::fill(m + T * ld, m + (T + kPadRows) * ld, 0.0f);
  }

  template <int ND16>
  STOCH_ALWAYS_INLINE static void head(const ForwardArgs& a) {
    const auto [q, k, v, T, head_dim, scale, o, o_stride, lse, buffer] = a;
    constexpr int64_t D = kBlock * ND16;
    constexpr int ND = D / W;
    constexpr int R = Tile::mix_rows(ND);
    const int64_t ld = round_up(T);
    float* kt = buffer;                       // [D, ld]
    float* p = kt + D * ld;                   // [ld + kPadRows, ld]
    float* spare = p + (ld + kPadRows) * ld;  // [D]
    transpose_rows(k, T, D, kt, ld);
    for (int64_t i0 = 0; i0 < T; i0 += Tile::kScoreRows) {
      scores_rows(q, i0, T, kt, ld, D, scale, p + i0 * ld, ld);
      for (int64_t i = i0; i < std::min<int64_t>(i0 + Tile::kScoreRows, T); ++i)
        lse[i] = softmax_row(p + i * ld, i, ld);
    }
    clear_padding_rows(p, T, ld);
    float* rows[R];
    for (int64_t i0 = 0; i0 < T; i0 += R) {
      output_rows<R>(o, o_stride, i0, T, spare, rows);
      mix_rows<R, ND>(p + i0 * ld, ld, 1, v, 0, std::min<int64_t>(i0 + R, T), rows);
    }
  }

  template <int ND16>
  STOCH_ALWAYS_INLINE static void head(const BackwardArgs& a) {
    const auto [q, k, v, o, grad_o, lse, T, head_dim, scale, grad_q, grad_k, grad_v, grad_stride,
                buffer] = a;
    constexpr int64_t D = kBlock * ND16;
    constexpr int ND = D / W;
    constexpr int R = Tile::mix_rows(ND);
    const int64_t ld = round_up(T);
    float* kt = buffer;                        // [D, ld]
    float* vt = kt + D * ld;                   // [D, ld]
    float* p = vt + D * ld;                    // [ld + kPadRows, ld]
    float* ds = p + (ld + kPadRows) * ld;      // [ld + kPadRows, ld]
    float* delta = ds + (ld + kPadRows) * ld;  // [ld]
    float* spare = delta + ld;                 // [D]
    transpose_rows(k, T, D, kt, ld);
    transpose_rows(v, T, D, vt, ld);
    for (int64_t i = 0; i < T; ++i) {
      const float* go = grad_o.data + i * grad_o.stride;
      const float* oi = o.data + i * o.stride;
      Vec acc = Vec{};
      for (int n = 0; n < ND; ++n) acc += S::load(go + W * n) * S::load(oi + W * n);
      delta[i] = S::horizontal_sum(acc);
    }
    for (int64_t i0 = 0; i0 < T; i0 += Tile::kScoreRows) {
      scores_rows(q, i0, T, kt, ld, D, scale, p + i0 * ld, ld);
      scores_rows(grad_o, i0, T, vt, ld, D, 1.0f, ds + i0 * ld, ld);
      for (int64_t i = i0; i < std::min<int64_t>(i0 + Tile::kScoreRows, T); ++i)
        gradient_row(p + i * ld, ds + i * ld, i, ld, lse[i], delta[i], scale);
    }
    clear_padding_rows(p, T, ld);
    clear_padding_rows(ds, T, ld);
    float* rows[R];
    for (int64_t i0 = 0; i0 < T; i0 += R) {
      output_rows<R>(grad_q, grad_stride, i0, T, spare, rows);
      mix_rows<R, ND>(ds + i0 * ld, ld, 1, k, 0, std::min<int64_t>(i0 + R, T), rows);
      // Column block [i0, i0 + R) against rows [i0, T): what lies above the diagonal is zero.
      output_rows<R>(grad_k, grad_stride, i0, T, spare, rows);
      mix_rows<R, ND>(ds + i0, 1, ld, q, i0, T, rows);
      output_rows<R>(grad_v, grad_stride, i0, T, spare, rows);
      mix_rows<R, ND>(p + i0, 1, ld, grad_o, i0, T, rows);
    }
  }
};

// Calls f.template operator()<ND16>() for ND16 = head_dim / 16 (1 to 8, checked by the caller).
template <class F>
STOCH_ALWAYS_INLINE void with_width(int64_t nd16, const F& f) {
  switch (nd16) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    case 4:
      return f.template operator()<4>();
    case 5:
      return f.template operator()<5>();
    case 6:
      return f.template operator()<6>();
    case 7:
      return f.template operator()<7>();
    case 8:
      return f.template operator()<8>();
  }
}

// Kernels<Isa>::head<ND16>(args) for the head width the arguments name.
template <class Isa, class Args>
struct AtWidth {
  const Args& args;
  template <int ND16>
  STOCH_ALWAYS_INLINE void operator()() const {
    Kernels<Isa>::template head<ND16>(args);
  }
};

// One head, forward or backward, in the clone dispatch_isa picks.
struct HeadKernel {
  template <class Isa, class Args>
  STOCH_ALWAYS_INLINE static void run(const Args* args) {
    with_width(args->head_dim / kBlock, AtWidth<Isa, Args>{*args});
  }
};

float* scratch_for(AttentionScratch& scratch, int64_t floats) {
  if (scratch.buffer.size() < static_cast<size_t>(floats))
    scratch.buffer.resize(static_cast<size_t>(floats));
  return scratch.buffer.data();
}

}  // namespace

bool causal_attention_head_dim_supported(int64_t head_dim) {
  return head_dim > 0 && head_dim % kBlock == 0 && head_dim <= 8 * kBlock;
}

void causal_attention_head_forward(HeadRows q, HeadRows k, HeadRows v, int64_t T, int64_t head_dim,
                                   float scale, float* o, int64_t o_stride, float* lse,
                                   AttentionScratch& scratch) {
  const int64_t ld = round_up(T);
  float* buffer = scratch_for(scratch, head_dim * ld + (ld + kPadRows) * ld + head_dim);
  const ForwardArgs args{q, k, v, T, head_dim, scale, o, o_stride, lse, buffer};
  dispatch_isa<HeadKernel>(&args);
}

void causal_attention_head_backward(HeadRows q, HeadRows k, HeadRows v, HeadRows o, HeadRows grad_o,
                                    const float* lse, int64_t T, int64_t head_dim, float scale,
                                    float* grad_q, float* grad_k, float* grad_v,
                                    int64_t grad_stride, AttentionScratch& scratch) {
  const int64_t ld = round_up(T);
  float* buffer =
      scratch_for(scratch, 2 * head_dim * ld + 2 * (ld + kPadRows) * ld + ld + head_dim);
  const BackwardArgs args{q,        k,     v,      o,      grad_o, lse,         T,
                          head_dim, scale, grad_q, grad_k, grad_v, grad_stride, buffer};
  dispatch_isa<HeadKernel>(&args);
}

}  // namespace stoch::models
