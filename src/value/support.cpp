#include "value/support.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::value {

Bounds discounted_return_bounds(double r_lo, double r_hi, double gamma) {
  if (gamma >= 1.0)
    throw InputError(
        "value.support: auto and running need dqn.gamma < 1: bootstrapped values are unbounded "
        "without discounting (a time limit does not bound them, since DQN bootstraps through "
        "it); use value.support: fixed");
  const double g = 1 / (1 - gamma);
  Bounds b{std::min(0.0, r_lo) * g, std::max(0.0, r_hi) * g};
  if (b.lo == b.hi) b = {-1, 1};
  return b;
}

RunningSupport::RunningSupport(double v_min, double v_max, double k, double rate, Bounds outer)
    : initial_{v_min, v_max}, outer_(outer), k_(k), rate_(rate) {}

void RunningSupport::observe(const float* targets, int64_t n) {
  double sum = 0, sq = 0;
  int64_t used = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = targets[i];
    if (!std::isfinite(v)) continue;
    sum += v;
    sq += v * v;
    ++used;
  }
  if (used == 0) return;
  const double u = static_cast<double>(used);
  mean_ += rate_ * (sum / u - mean_);
  sq_ += rate_ * (sq / u - sq_);
  weight_ += rate_ * (1 - weight_);
}

Bounds RunningSupport::bounds() const {
  if (weight_ <= 0) return initial_;
  const double mean = mean_ / weight_;
  const double var = std::max(0.0, sq_ / weight_ - mean * mean);
  const double half = std::max(kMinHalfWidth, k_ * std::sqrt(var));
  const double w = 2 * kMinHalfWidth;
  Bounds b{mean - half, mean + half};
  b.lo = std::min(std::max(b.lo, outer_.lo), outer_.hi - w);
  b.hi = std::max(std::min(b.hi, outer_.hi), b.lo + w);
  return b;
}

std::vector<double> RunningSupport::state() const {
  return {mean_, sq_, weight_};
}

void RunningSupport::load(const std::vector<double>& state, const std::string& what) {
  if (state.size() != 3) throw InputError(str(what, ": expected 3 values of the running support"));
  for (double v : state)
    if (!std::isfinite(v)) throw InputError(str(what, ": a running-support value is not finite"));
  if (state[2] < 0 || state[2] > 1 || state[1] < 0)
    throw InputError(str(what, ": running-support weight or mean square out of range"));
  mean_ = state[0];
  sq_ = state[1];
  weight_ = state[2];
}

}  // namespace stoch::value
