#include "data/dirichlet.h"

#include <cmath>
#include <stdexcept>

namespace stoch::data {

double sample_log_gamma(Rng& rng, double shape) {
  if (!(shape > 0.0) || !std::isfinite(shape)) {
    throw std::invalid_argument("gamma shape: expected a finite value > 0");
  }
  // Marsaglia-Tsang needs shape >= 1. For shape < 1 use the boost G(a) = G(a + 1) * U^(1/a),
  // added in log space so that it cannot underflow.
  double log_boost = 0.0;
  if (shape < 1.0) {
    double u = rng.uniform();
    while (u <= 0.0) u = rng.uniform();
    log_boost = std::log(u) / shape;
    shape += 1.0;
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = rng.normal();
    const double t = 1.0 + c * x;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    const double u = rng.uniform();
    // Cheap squeeze first; the exact log test only when it fails.
    if (u < 1.0 - 0.0331 * x * x * x * x ||
        (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v)))) {
      return std::log(d * v) + log_boost;
    }
  }
}

double sample_gamma(Rng& rng, double shape) {
  return std::exp(sample_log_gamma(rng, shape));
}

void sample_dirichlet(Rng& rng, double alpha, int64_t n, double* out) {
  // Normalise in log space (subtract the largest log draw) so tiny alphas keep their shape.
  double max_log = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = sample_log_gamma(rng, alpha);
    max_log = std::max(max_log, out[i]);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(out[i] - max_log);
    sum += out[i];
  }
  for (int64_t i = 0; i < n; ++i) out[i] = std::max(out[i] / sum, kMinProbability);
}

std::vector<double> sample_dirichlet_rows(Rng& rng, double alpha, int64_t rows, int64_t n) {
  std::vector<double> probs(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r) sample_dirichlet(rng, alpha, n, probs.data() + r * n);
  return probs;
}

std::vector<double> cumulative_rows(const std::vector<double>& probs, int64_t rows, int64_t n) {
  std::vector<double> cum(probs.size());
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      acc += probs[r * n + i];
      cum[r * n + i] = acc;
    }
    cum[r * n + n - 1] = 1.0;
  }
  return cum;
}

}  // namespace stoch::data
