#include "rl/envs/minatar_env.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace stoch::rl::minatar {
namespace {

constexpr double kDefaultSticky = 0.1;

// EnvOptions holds a float; minatar compares against a Python float. Going through the shortest
// decimal that round-trips gives 0.1 (not 0.100000001490116) for 0.1f, as the user meant.
double as_python_float(float f) {
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

}  // namespace

MinAtarEnv::MinAtarEnv(const EnvOptions& options, int channels, uint32_t tag,
                       std::vector<int> minimal)
    : ramping_(options.difficulty_ramping),
      channels_(channels),
      tag_(tag),
      sticky_(options.sticky_action_prob < 0 ? kDefaultSticky
                                             : as_python_float(options.sticky_action_prob)),
      max_steps_(std::max(0, options.max_episode_steps)) {
  if (options.minimal_action_set) {
    actions_ = std::move(minimal);
  } else {
    for (int a = 0; a < kFullActions; ++a) actions_.push_back(a);
  }
}

void MinAtarEnv::start() {
  // A valid state before the first reset, then a stream as if just seeded with 0.
  seed(0);
  reset();
  seed(0);
}

void MinAtarEnv::seed(uint64_t seed) {
  rng_.seed_with(static_cast<uint32_t>(seed));
  last_action_ = kNoop;
}

void MinAtarEnv::reset() {
  terminal_ = false;
  steps_ = 0;
  game_reset();
}

void MinAtarEnv::observe(float* out) const {
  std::fill(out, out + channels_ * kSize * kSize, 0.0f);
  render(out);
}

StepResult MinAtarEnv::step(int action) {
  if (action < 0 || action >= num_actions())
    throw std::out_of_range("MinAtar: action out of range");
  int a = actions_[action];
  if (rng_.rand() < sticky_) a = last_action_;
  last_action_ = a;
  StepResult r;
  // minatar's act() pays nothing once the episode is over.
  if (!terminal_) r.reward = static_cast<float>(game_act(a));
  r.terminated = terminal_;
  ++steps_;
  r.truncated = !r.terminated && max_steps_ > 0 && steps_ >= max_steps_;
  return r;
}

std::string MinAtarEnv::save_state() const {
  StateWriter w;
  w.put(tag_);
  rng_.save(w);
  w.put<int32_t>(last_action_);
  w.put<int32_t>(steps_);
  w.put<uint8_t>(terminal_);
  save_game(w);
  return std::move(w).str();
}

void MinAtarEnv::load_state(const std::string& bytes) {
  StateReader r(bytes);
  if (r.get<uint32_t>() != tag_) throw std::runtime_error("environment state is for another game");
  // Read into a copy first so that a malformed state leaves this env untouched.
  NumpyRandom rng;
  rng.load(r);
  const int32_t last = r.get<int32_t>();
  const int32_t steps = r.get<int32_t>();
  const uint8_t terminal = r.get<uint8_t>();
  if (last < 0 || last >= kFullActions || steps < 0 || terminal > 1)
    throw std::runtime_error("environment state is malformed");
  load_game(r);  // commits the game only after checking the end
  rng_ = rng;
  last_action_ = last;
  steps_ = steps;
  terminal_ = terminal;
}

}  // namespace stoch::rl::minatar
