#include "rl/envs/mountain_car.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/registry.h"
#include "rl/envs/gymnasium_float64.h"  // last: it turns off contraction

namespace stoch::rl {
namespace {

// Constants and the order of every operation follow gymnasium's mountain_car.py, so that the
// float64 trajectory is the same to the last bit.
constexpr double kMinPosition = -1.2;
constexpr double kMaxPosition = 0.6;
constexpr double kMaxSpeed = 0.07;
constexpr double kGoalPosition = 0.5;
constexpr double kGoalVelocity = 0.0;
constexpr double kForce = 0.001;
constexpr double kGravity = 0.0025;
constexpr double kResetLow = -0.6;
constexpr double kResetHigh = -0.4;

constexpr uint32_t kStateTag = 0x4D435630;  // "MCV0": rejects another environment's bytes

}  // namespace

MountainCar::MountainCar(const EnvOptions& options)
    : ClassicControlEnv(options, kDefaultMaxSteps, kStateTag, "MountainCar") {
  reset();
}

void MountainCar::reset() {
  state_ = {kResetLow + (kResetHigh - kResetLow) * rng_.uniform(), 0.0};
  start_episode();
}

void MountainCar::observe(float* out) const {
  out[0] = static_cast<float>(state_[0]);
  out[1] = static_cast<float>(state_[1]);
}

StepResult MountainCar::step(int action) {
  if (action < 0 || action > 2) throw std::out_of_range("MountainCar: action must be 0, 1 or 2");
  double position = state_[0], velocity = state_[1];
  velocity += (action - 1) * kForce + std::cos(3 * position) * (-kGravity);
  velocity = std::min(std::max(velocity, -kMaxSpeed), kMaxSpeed);
  position += velocity;
  position = std::min(std::max(position, kMinPosition), kMaxPosition);
  // The left edge is a wall: the car stops there instead of bouncing.
  if (position == kMinPosition && velocity < 0) velocity = 0;
  state_ = {position, velocity};

  StepResult r;
  r.terminated = position >= kGoalPosition && velocity >= kGoalVelocity;
  r.reward = -1.0f;
  r.truncated = count_step();
  return r;
}

bool MountainCar::reachable(const std::array<double, 2>& s) const {
  return s[0] >= kMinPosition && s[0] <= kMaxPosition && std::abs(s[1]) <= kMaxSpeed;
}

namespace {
const bool registered = register_env<MountainCar>(
    "MountainCar-v0",
    "Gymnasium MountainCar-v0: rock an under-powered car up a hill; 2 floats, 3 actions, "
    "200 steps");
}  // namespace

}  // namespace stoch::rl
