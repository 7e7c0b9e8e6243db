#include "rl/envs/acrobot.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/registry.h"
#include "rl/envs/gymnasium_float64.h"  // last: it turns off contraction

namespace stoch::rl {
namespace {

// Constants and the order of every operation follow gymnasium's acrobot.py, so that the float64
// trajectory is the same to the last bit (no reassociation, no fused multiply-add).
constexpr double kPi = 3.141592653589793;  // numpy.pi
constexpr double kDt = 0.2;
constexpr double kL1 = 1.0;  // length of link 1
constexpr double kM1 = 1.0;  // link masses
constexpr double kM2 = 1.0;
constexpr double kLc1 = 0.5;  // centres of mass along the links
constexpr double kLc2 = 0.5;
constexpr double kI1 = 1.0;  // moments of inertia
constexpr double kI2 = 1.0;
constexpr double kG = 9.8;
constexpr double kMaxVel1 = 4 * kPi;
constexpr double kMaxVel2 = 9 * kPi;
constexpr double kTorque[3] = {-1.0, 0.0, 1.0};
constexpr double kResetBound = 0.1;

constexpr uint32_t kStateTag = 0x41435631;  // "ACV1": rejects another environment's bytes

// Gymnasium squares with `x**2`, i.e. libm's pow(x, 2), which now and then differs from x * x in
// the last bit; the chaotic dynamics would grow that into visible drift. The exponent is opaque
// so that the compiler cannot turn pow(x, 2) into x * x.
double pow2(double x) {
  static volatile double two = 2.0;
  return std::pow(x, two);
}

// {theta1, theta2, dtheta1, dtheta2, torque}; the torque's derivative is zero.
using Augmented = std::array<double, 5>;

// The "book" equations of motion (Sutton & Barto), as gymnasium's _dsdt.
Augmented dsdt(const Augmented& s) {
  const double a = s[4];
  const double theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
  const double d1 = kM1 * (kLc1 * kLc1) +
                    kM2 * ((kL1 * kL1) + (kLc2 * kLc2) + 2 * kL1 * kLc2 * std::cos(theta2)) + kI1 +
                    kI2;
  const double d2 = kM2 * ((kLc2 * kLc2) + kL1 * kLc2 * std::cos(theta2)) + kI2;
  const double phi2 = kM2 * kLc2 * kG * std::cos(theta1 + theta2 - kPi / 2.0);
  const double phi1 = -kM2 * kL1 * kLc2 * pow2(dtheta2) * std::sin(theta2) -
                      2 * kM2 * kL1 * kLc2 * dtheta2 * dtheta1 * std::sin(theta2) +
                      (kM1 * kLc1 + kM2 * kL1) * kG * std::cos(theta1 - kPi / 2) + phi2;
  const double ddtheta2 =
      (a + d2 / d1 * phi1 - kM2 * kL1 * kLc2 * pow2(dtheta1) * std::sin(theta2) - phi2) /
      (kM2 * (kLc2 * kLc2) + kI2 - pow2(d2) / d1);
  const double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
  return {dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0};
}

// y + h * k, elementwise.
Augmented axpy(const Augmented& y, double h, const Augmented& k) {
  Augmented out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = y[i] + h * k[i];
  return out;
}

// Gymnasium's rk4 over the time points {0, dt}: one classic Runge-Kutta step.
Augmented rk4(const Augmented& y0) {
  const double dt = kDt - 0;
  const double dt2 = dt / 2.0;
  const Augmented k1 = dsdt(y0);
  const Augmented k2 = dsdt(axpy(y0, dt2, k1));
  const Augmented k3 = dsdt(axpy(y0, dt2, k2));
  const Augmented k4 = dsdt(axpy(y0, dt, k3));
  Augmented out;
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = y0[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
  return out;
}

// Shifts x by whole turns into [lo, hi] (a loop, as gymnasium's wrap, for identical rounding).
double wrap(double x, double lo, double hi) {
  const double diff = hi - lo;
  while (x > hi) x = x - diff;
  while (x < lo) x = x + diff;
  return x;
}

double bound(double x, double lo, double hi) {
  return std::min(std::max(x, lo), hi);
}

}  // namespace

Acrobot::Acrobot(const EnvOptions& options)
    : ClassicControlEnv(options, kDefaultMaxSteps, kStateTag, "Acrobot") {
  reset();
}

void Acrobot::reset() {
  // Gymnasium draws in float64 and stores the start state as float32.
  for (double& v : state_)
    v = static_cast<float>(-kResetBound + (kResetBound - -kResetBound) * rng_.uniform());
  start_episode();
}

void Acrobot::observe(float* out) const {
  out[0] = static_cast<float>(std::cos(state_[0]));
  out[1] = static_cast<float>(std::sin(state_[0]));
  out[2] = static_cast<float>(std::cos(state_[1]));
  out[3] = static_cast<float>(std::sin(state_[1]));
  out[4] = static_cast<float>(state_[2]);
  out[5] = static_cast<float>(state_[3]);
}

StepResult Acrobot::step(int action) {
  if (action < 0 || action > 2) throw std::out_of_range("Acrobot: action must be 0, 1 or 2");
  const Augmented ns = rk4({state_[0], state_[1], state_[2], state_[3], kTorque[action]});
  state_[0] = wrap(ns[0], -kPi, kPi);
  state_[1] = wrap(ns[1], -kPi, kPi);
  state_[2] = bound(ns[2], -kMaxVel1, kMaxVel1);
  state_[3] = bound(ns[3], -kMaxVel2, kMaxVel2);

  StepResult r;
  // The tip is more than one link length above the pivot.
  r.terminated = -std::cos(state_[0]) - std::cos(state_[1] + state_[0]) > 1.0;
  r.reward = r.terminated ? 0.0f : -1.0f;
  r.truncated = count_step();
  return r;
}

bool Acrobot::reachable(const std::array<double, 4>& s) const {
  return std::abs(s[0]) <= kPi && std::abs(s[1]) <= kPi && std::abs(s[2]) <= kMaxVel1 &&
         std::abs(s[3]) <= kMaxVel2;
}

namespace {
const bool registered = register_env<Acrobot>(
    "Acrobot-v1",
    "Gymnasium Acrobot-v1: swing a two-link pendulum's tip above a bar; 6 floats, 3 actions, "
    "500 steps");
}  // namespace

}  // namespace stoch::rl
