// MinAtar Space Invaders (minatar 1.0.15 space_invaders.py): a cannon on the bottom row shoots at
// a 4x6 block of aliens that sweeps sideways and steps down at the edges, speeding up as it
// thins; the nearest alien shoots back. Each cleared wave comes back faster when ramping.
// The game itself draws no random numbers; only sticky actions do.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "core/registry.h"
#include "rl/envs/minatar_env.h"

namespace stoch::rl::minatar {
namespace {

enum Channel { kCannon, kAlien, kAlienLeft, kAlienRight, kFriendlyBullet, kEnemyBullet, kChannels };

constexpr int kShotCoolDown = 5;
constexpr int kEnemyMoveInterval = 12;
constexpr int kEnemyShotInterval = 10;

using Map = uint8_t[kSize][kSize];

struct State {
  int32_t pos, alien_dir, enemy_move_interval, alien_move_timer, alien_shot_timer, ramp_index,
      shot_timer;
  uint8_t aliens[kSize][kSize];
  uint8_t f_bullets[kSize][kSize];
  uint8_t e_bullets[kSize][kSize];
};
static_assert(std::has_unique_object_representations_v<State>, "saved as raw bytes");

// np.roll(m, 1, axis=0) (down) or np.roll(m, -1, axis=0) (up): rows wrap around.
void roll_rows(Map& m, bool down) {
  uint8_t keep[kSize];
  if (down) {
    std::copy(m[9], m[9] + kSize, keep);
    for (int y = 9; y > 0; --y) std::copy(m[y - 1], m[y - 1] + kSize, m[y]);
    std::copy(keep, keep + kSize, m[0]);
  } else {
    std::copy(m[0], m[0] + kSize, keep);
    for (int y = 0; y < 9; ++y) std::copy(m[y + 1], m[y + 1] + kSize, m[y]);
    std::copy(keep, keep + kSize, m[9]);
  }
}

// np.roll(m, shift, axis=1) for shift +-1: columns wrap around.
void roll_cols(Map& m, int shift) {
  for (auto& row : m) {
    if (shift > 0) {
      std::rotate(row, row + kSize - 1, row + kSize);
    } else {
      std::rotate(row, row + 1, row + kSize);
    }
  }
}

int count(const Map& m) {
  int n = 0;
  for (const auto& row : m)
    for (uint8_t v : row) n += v;
  return n;
}

bool column_has(const Map& m, int x) {
  for (int y = 0; y < kSize; ++y)
    if (m[y][x]) return true;
  return false;
}

class SpaceInvaders : public MinAtarEnv {
 public:
  // A bullet kills one alien, climbs a row a step (ten steps at most) and reloads in five:
  // three alive at most.
  RewardRange reward_range() const override { return {0, 3}; }
  explicit SpaceInvaders(const EnvOptions& o)
      : MinAtarEnv(o, kChannels, 0x4d415331 /* MAS1 */, {kNoop, kLeft, kRight, kFire}) {
    start();
  }

 protected:
  void game_reset() override {
    s_ = State{};
    s_.pos = 5;
    fill_wave();
    s_.alien_dir = -1;
    s_.enemy_move_interval = kEnemyMoveInterval;
    s_.alien_move_timer = s_.enemy_move_interval;
    s_.alien_shot_timer = kEnemyShotInterval;
  }

  int game_act(int a) override {
    if (a == kFire && s_.shot_timer == 0) {
      s_.f_bullets[9][s_.pos] = 1;
      s_.shot_timer = kShotCoolDown;
    } else if (a == kLeft) {
      s_.pos = std::max(0, s_.pos - 1);
    } else if (a == kRight) {
      s_.pos = std::min(9, s_.pos + 1);
    }

    roll_rows(s_.f_bullets, false);
    std::fill(s_.f_bullets[9], s_.f_bullets[9] + kSize, 0);
    roll_rows(s_.e_bullets, true);
    std::fill(s_.e_bullets[0], s_.e_bullets[0] + kSize, 0);
    if (s_.e_bullets[9][s_.pos]) terminal_ = true;

    if (s_.aliens[9][s_.pos]) terminal_ = true;
    if (s_.alien_move_timer == 0) {
      s_.alien_move_timer = std::min(count(s_.aliens), s_.enemy_move_interval);
      if ((column_has(s_.aliens, 0) && s_.alien_dir < 0) ||
          (column_has(s_.aliens, 9) && s_.alien_dir > 0)) {
        s_.alien_dir = -s_.alien_dir;
        if (std::any_of(s_.aliens[9], s_.aliens[9] + kSize, [](uint8_t v) { return v != 0; }))
          terminal_ = true;
        roll_rows(s_.aliens, true);
      } else {
        roll_cols(s_.aliens, s_.alien_dir);
      }
      if (s_.aliens[9][s_.pos]) terminal_ = true;
    }
    if (s_.alien_shot_timer == 0) {
      s_.alien_shot_timer = kEnemyShotInterval;
      shoot_from_nearest_alien();
    }

    int r = 0;
    for (int y = 0; y < kSize; ++y) {
      for (int x = 0; x < kSize; ++x) {
        if (s_.aliens[y][x] && s_.f_bullets[y][x]) {
          ++r;
          s_.aliens[y][x] = s_.f_bullets[y][x] = 0;
        }
      }
    }

    if (s_.shot_timer > 0) s_.shot_timer -= 1;
    s_.alien_move_timer -= 1;
    s_.alien_shot_timer -= 1;
    if (count(s_.aliens) == 0) {
      if (s_.enemy_move_interval > 6 && ramping_) {
        s_.enemy_move_interval -= 1;
        s_.ramp_index += 1;
      }
      fill_wave();
    }
    return r;
  }

  void render(float* out) const override {
    mark(out, kCannon, 9, s_.pos);
    const int dir_channel = s_.alien_dir < 0 ? kAlienLeft : kAlienRight;
    for (int y = 0; y < kSize; ++y) {
      for (int x = 0; x < kSize; ++x) {
        if (s_.aliens[y][x]) {
          mark(out, kAlien, y, x);
          mark(out, dir_channel, y, x);
        }
        if (s_.f_bullets[y][x]) mark(out, kFriendlyBullet, y, x);
        if (s_.e_bullets[y][x]) mark(out, kEnemyBullet, y, x);
      }
    }
  }

  void save_game(StateWriter& w) const override { w.put(s_); }

  void load_game(StateReader& r) override {
    const State s = r.get<State>();
    r.expect_end();
    bool ok = s.pos >= 0 && s.pos < kSize && (s.alien_dir == 1 || s.alien_dir == -1) &&
              s.alien_move_timer >= 0 && s.alien_shot_timer >= 0 && s.shot_timer >= 0 &&
              count(s.aliens) > 0;
    for (const Map* m : {&s.aliens, &s.f_bullets, &s.e_bullets})
      for (const auto& row : *m)
        for (uint8_t v : row) ok = ok && v <= 1;
    if (!ok) throw std::runtime_error("SpaceInvaders state is malformed");
    s_ = s;
  }

 private:
  void fill_wave() {
    for (int y = 0; y < 4; ++y) std::fill(s_.aliens[y] + 2, s_.aliens[y] + 8, 1);
  }

  // The lowest alien of the nonempty column nearest the cannon (ties: the left column) fires.
  void shoot_from_nearest_alien() {
    for (int d = 0; d < kSize; ++d) {
      for (int x : {s_.pos - d, s_.pos + d}) {
        if (x < 0 || x >= kSize) continue;
        for (int y = kSize - 1; y >= 0; --y) {
          if (s_.aliens[y][x]) {
            s_.e_bullets[y][x] = 1;
            return;
          }
        }
      }
    }
  }

  State s_{};
};

const bool registered = register_env<SpaceInvaders>(
    "MinAtar/SpaceInvaders",
    "MinAtar Space Invaders (minatar 1.0.15): 6x10x10 binary frames, 6 actions (minimal: 4), "
    "sticky actions 0.1, difficulty ramping");

}  // namespace
}  // namespace stoch::rl::minatar
