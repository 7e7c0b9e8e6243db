#include "rl/envs/cartpole.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/registry.h"
#include "rl/envs/state_io.h"

// Gymnasium's float64 arithmetic rounds every product and sum; a fused multiply-add (which
// -march=native builds may emit) would change the trajectories' last bits.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

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
    : max_steps_(options.max_episode_steps > 0 ? options.max_episode_steps : kDefaultMaxSteps) {
  reset();
}

void CartPole::seed(uint64_t seed) {
  rng_ = Rng(seed);
}

void CartPole::reset() {
  for (double& v : state_) v = -kResetBound + (kResetBound - -kResetBound) * rng_.uniform();
  elapsed_ = 0;
  terminated_ = false;
}

void CartPole::set_physics(const std::vector<double>& state, int elapsed_steps) {
  if (state.size() != state_.size())
    throw std::invalid_argument("CartPole::set_physics: expected 4 values");
  std::copy(state.begin(), state.end(), state_.begin());
  elapsed_ = elapsed_steps;
  terminated_ = false;
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
  r.truncated = ++elapsed_ >= max_steps_;
  return r;
}

std::string CartPole::save_state() const {
  StateWriter w;
  w.put(kStateTag).put(state_).put(elapsed_).put<uint8_t>(terminated_).put(rng_);
  return std::move(w).str();
}

void CartPole::load_state(const std::string& bytes) {
  StateReader r(bytes);
  if (r.get<uint32_t>() != kStateTag) throw std::runtime_error("not a CartPole state");
  const auto state = r.get<std::array<double, 4>>();
  const int elapsed = r.get<int>();
  const uint8_t terminated = r.get<uint8_t>();
  if (terminated > 1) throw std::runtime_error("CartPole state: bad termination flag");
  static_assert(sizeof(Rng) == sizeof(std::array<uint64_t, 4>), "Rng is four words");
  const auto words = r.get<std::array<uint64_t, 4>>();
  r.expect_end();
  state_ = state;
  elapsed_ = elapsed;
  terminated_ = terminated != 0;
  std::memcpy(static_cast<void*>(&rng_), words.data(), sizeof rng_);
}

namespace {
const bool registered = registry<EnvEntry>().add(
    "CartPole-v1",
    {"Gymnasium CartPole-v1: balance a pole on a cart; 4 floats, 2 actions, 500 steps",
     [](const EnvOptions& options) -> std::unique_ptr<Env> {
       return std::make_unique<CartPole>(options);
     }});
}  // namespace

}  // namespace stoch::rl
