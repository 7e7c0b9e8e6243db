// Shared MinAtar machinery: sticky actions, full or minimal action sets, the step limit, the
// numpy-compatible random stream and the state bytes. Each game supplies its rules on top.
//
// Semantics follow minatar 1.0.15's Environment seeded with Environment.seed(s): one rand()
// decides the sticky action before every game step (also when the probability is 0), the last
// action survives reset() as it does there, and seed() also clears it (a fresh Environment).
// Env::seed(uint64_t) keeps the low 32 bits: RandomState only accepts seeds below 2**32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rl/envs/env.h"
#include "rl/envs/numpy_random.h"
#include "rl/state_io.h"

namespace stoch::rl::minatar {

// The six actions of minatar's action_map, in its order.
enum Action : int { kNoop = 0, kLeft = 1, kUp = 2, kRight = 3, kDown = 4, kFire = 5 };
constexpr int kFullActions = 6;
constexpr int kSize = 10;  // every game is a 10x10 grid

// Sets cell (y, x) of channel c in a channels-first {C, 10, 10} observation.
inline void mark(float* out, int c, int y, int x) {
  out[(c * kSize + y) * kSize + x] = 1.0f;
}

// Python's a // b for b > 0 (rounds toward minus infinity).
inline int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

class MinAtarEnv : public Env {
 public:
  std::vector<int64_t> observation_shape() const override { return {channels_, kSize, kSize}; }
  bool binary_observation() const override { return true; }
  int num_actions() const override { return static_cast<int>(actions_.size()); }
  int time_limit() const override { return max_steps_; }
  void seed(uint64_t seed) override;
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;
  std::string save_state() const override;
  void load_state(const std::string& bytes) override;

  // Full-set indices (into the six above) that this env's actions stand for.
  const std::vector<int>& action_set() const { return actions_; }
  double sticky_action_prob() const { return sticky_; }

 protected:
  // tag: identifies the game in save_state; minimal: the game's minimal_action_set().
  MinAtarEnv(const EnvOptions& options, int channels, uint32_t tag, std::vector<int> minimal);
  // Called at the end of each game's constructor, once the game's hooks exist.
  void start();

  // The game's own reset(), drawing from rng_.
  virtual void game_reset() = 0;
  // The game's act() for a full-set action on a live episode; returns the reward and sets
  // terminal_ when the episode ends.
  virtual int game_act(int action) = 0;
  // Marks the game's cells on a zeroed observation.
  virtual void render(float* out) const = 0;
  virtual void save_game(StateWriter& w) const = 0;
  // Reads what save_game wrote, calls r.expect_end(), and only then replaces the game's state,
  // so that malformed bytes throw and leave the env as it was.
  virtual void load_game(StateReader& r) = 0;

  NumpyRandom rng_;
  bool ramping_;
  bool terminal_ = false;

 private:
  int channels_;
  uint32_t tag_;
  std::vector<int> actions_;
  double sticky_;
  int max_steps_;
  int last_action_ = kNoop;
  int steps_ = 0;
};

}  // namespace stoch::rl::minatar
