#include "rl/envs/cartpole.h"

#include <cmath>
#include <stdexcept>

#include "core/registry.h"
#include "rl/envs/gymnasium_float64.h"  // last: it turns off contraction

namespace stoch::rl {
namespace {

// Constants and the order of every operation follow gymnasium's cartpole.py, so that the float64
// trajectory is the same to the last bit (no reassociation, no fused multiply-add).
constexpr double kGravity = 9.8;
constexpr double kMassCart = 1.0;
constexpr double kMassPole = 0.1;
constexpr double kTotalMass = kMassPole + kMassCart;
constexpr double kLength = 0.5;  // half the pole's length
constexpr double kPoleMassLength = kMassPole * kLength;
constexpr double kForceMag = 10.0;
constexpr double kTau = 0.02;
constexpr double kPi = 3.141592653589793;  // math.pi
constexpr double kThetaThreshold = 12 * 2 * kPi / 360;
constexpr double kXThreshold = 2.4;
constexpr double kResetBound = 0.05;

constexpr uint32_t kStateTag = 0x43505631;  // "CPV1": rejects another environment's bytes

}  // namespace

CartPole::CartPole(const EnvOptions& options)
    : ClassicControlEnv(options, kDefaultMaxSteps, kStateTag, "CartPole") {
  reset();
}

void CartPole::reset() {
  for (double& v : state_) v = -kResetBound + (kResetBound - -kResetBound) * rng_.uniform();
  start_episode();
}

void CartPole::observe(float* out) const {
  for (size_t i = 0; i < state_.size(); ++i) out[i] = static_cast<float>(state_[i]);
}

StepResult CartPole::step(int action) {
  if (action != 0 && action != 1) throw std::out_of_range("CartPole: action must be 0 or 1");
  double x = state_[0], x_dot = state_[1], theta = state_[2], theta_dot = state_[3];
  const double force = action == 1 ? kForceMag : -kForceMag;
  const double costheta = std::cos(theta);
  const double sintheta = std::sin(theta);

  const double temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sintheta) / kTotalMass;
  const double thetaacc = (kGravity * sintheta - costheta * temp) /
                          (kLength * (4.0 / 3.0 - kMassPole * (costheta * costheta) / kTotalMass));
  const double xacc = temp - kPoleMassLength * thetaacc * costheta / kTotalMass;

  x = x + kTau * x_dot;
  x_dot = x_dot + kTau * xacc;
  theta = theta + kTau * theta_dot;
  theta_dot = theta_dot + kTau * thetaacc;
  state_ = {x, x_dot, theta, theta_dot};

  StepResult r;
  r.terminated =
      x < -kXThreshold || x > kXThreshold || theta < -kThetaThreshold || theta > kThetaThreshold;
  r.reward = (r.terminated && terminated_) ? 0.0f : 1.0f;
  terminated_ = terminated_ || r.terminated;
  r.truncated = count_step();
  return r;
}

bool CartPole::reachable(const std::array<double, 4>& s) const {
  // Episodes end at the thresholds, long before any value nears 1e3; past that the squared
  // angular velocity in the equations could overflow.
  for (const double v : s)
    if (std::abs(v) > 1e3) return false;
  return true;
}

namespace {
const bool registered = register_env<CartPole>(
    "CartPole-v1",
    "Gymnasium CartPole-v1: balance a pole on a cart; 4 floats, 2 actions, 500 steps");
}  // namespace

}  // namespace stoch::rl
