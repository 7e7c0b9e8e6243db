// Random distributions for the synthetic sources: Gamma and symmetric Dirichlet draws for their
// parameters, and categorical draws by inverse CDF for their tokens.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace stoch::data {

// Smallest probability a drawn row may hold. Tiny Dirichlet concentrations underflow to exact
// zeros, which would make log-probabilities infinite; this floor keeps every row strictly positive.
inline constexpr double kMinProbability = 1e-300;

// log of a Gamma(shape, 1) draw (Marsaglia-Tsang). Returned as a log because for shape << 1 the
// draw itself underflows to zero.
double sample_log_gamma(Rng& rng, double shape);

// A Gamma(shape, 1) draw, shape > 0.
double sample_gamma(Rng& rng, double shape);

// Writes a symmetric Dirichlet(alpha) draw of dimension n into out[0..n): positive, sums to 1.
void sample_dirichlet(Rng& rng, double alpha, int64_t n, double* out);

// `rows` independent Dirichlet(alpha) draws of dimension n, row-major.
std::vector<double> sample_dirichlet_rows(Rng& rng, double alpha, int64_t rows, int64_t n);

// Running sums of each row of a row-major rows x n matrix of distributions, with each row's last
// entry set to exactly 1 so that an inverse-CDF draw of u in [0, 1) always lands inside the row.
std::vector<double> cumulative_rows(const std::vector<double>& probs, int64_t rows, int64_t n);

// Inverse-CDF draw from one cumulative row: the first index i with cum[i] > u.
inline int32_t sample_cumulative(const double* cum, int64_t n, double u) {
  return static_cast<int32_t>(std::upper_bound(cum, cum + n, u) - cum);
}

}  // namespace stoch::data
