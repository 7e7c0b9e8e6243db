// Where a categorical value head's bins lie when value.support is not `fixed`:
//   auto     bounds the task can prove (a discounted return's reach, or the targets' range);
//   running  bins that follow the targets: mean +- k standard deviations of an exponential
//            moving average, moved only between updates, and kept within the bounds `auto`
//            would use: bins that follow bootstrapped targets otherwise chase their own
//            read-backs (a wider support spreads the read-backs, which widens the targets; on
//            CartPole and MountainCar the support ran off to 1e38).
// Plain C++ (no LibTorch): the losses apply the bounds, the tasks decide when.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::value {

struct Bounds {
  double lo = 0, hi = 0;
};

// What a bootstrapped value can reach when every step pays in [r_lo, r_hi]:
// [min(0, r_lo), max(0, r_hi)] / (1 - gamma). A time limit does not shorten it: DQN bootstraps
// through truncation and its observations carry no clock, so it learns the values of an
// episode without one (MountainCar's never-finishing policy is worth -100, not the 200 steps'
// -86.6). Throws InputError for gamma 1 (unbounded), and widens a zero-width range (every step
// pays 0) to [-1, 1].
Bounds discounted_return_bounds(double r_lo, double r_hi, double gamma);

class RunningSupport {
 public:
  // Starts at [v_min, v_max]; k standard deviations each side; `rate` is the moving average's
  // weight on each batch; the bounds never leave `outer`.
  RunningSupport(double v_min, double v_max, double k, double rate, Bounds outer);

  // Folds one batch of targets (in return units) into the moving mean and variance. Non-finite
  // targets are skipped.
  void observe(const float* targets, int64_t n);

  // The bounds for the next update: mean -+ k std of the bias-corrected averages, at least
  // kMinHalfWidth each side, clipped to `outer` (and at least 2 kMinHalfWidth wide within
  // it); the initial bounds before any target.
  Bounds bounds() const;

  static constexpr double kMinHalfWidth = 1e-3;

  // For checkpoints: {mean, mean of squares, weight} (the weight corrects the averages' bias
  // towards zero, as Adam's does).
  std::vector<double> state() const;
  // Throws InputError naming `what` for a state of the wrong length or non-finite values.
  void load(const std::vector<double>& state, const std::string& what);

 private:
  Bounds initial_, outer_;
  double k_, rate_;
  double mean_ = 0, sq_ = 0, weight_ = 0;
};

}  // namespace stoch::value
