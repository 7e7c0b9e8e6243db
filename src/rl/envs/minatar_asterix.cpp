// MinAtar Asterix (minatar 1.0.15 asterix.py): the player roams rows 1-8; enemies and gold cross
// those rows from the sides. Gold pays 1, an enemy ends the episode. With ramping, spawning and
// movement speed up every 100 steps.
#include <algorithm>
#include <memory>
#include <type_traits>

#include "core/registry.h"
#include "rl/envs/minatar_env.h"

namespace stoch::rl::minatar {
namespace {

enum Channel { kPlayer, kEnemy, kTrail, kGold, kChannels };

constexpr int kRampInterval = 100;
constexpr int kInitSpawnSpeed = 10;
constexpr int kInitMoveInterval = 5;
constexpr int kSlots = 8;  // one entity per row 1..8

struct Entity {
  int32_t alive, x, y, right, gold;
};
struct State {
  int32_t player_x, player_y, spawn_speed, spawn_timer, move_speed, move_timer, ramp_timer,
      ramp_index;
  Entity slots[kSlots];
};
static_assert(std::has_unique_object_representations_v<State>, "saved as raw bytes");

inline bool on_grid(int v) {
  return v >= 0 && v < kSize;
}
inline bool is_flag(int v) {
  return v == 0 || v == 1;
}

class Asterix : public MinAtarEnv {
 public:
  // One gold a step at most: one entity per row, and the player in one cell.
  RewardRange reward_range() const override { return {0, 1}; }
  explicit Asterix(const EnvOptions& o)
      : MinAtarEnv(o, kChannels, 0x4d414131 /* MAA1 */, {kNoop, kLeft, kUp, kRight, kDown}) {
    start();
  }

 protected:
  void game_reset() override {
    s_ = State{};
    s_.player_x = 5;
    s_.player_y = 5;
    s_.spawn_speed = kInitSpawnSpeed;
    s_.spawn_timer = s_.spawn_speed;
    s_.move_speed = kInitMoveInterval;
    s_.move_timer = s_.move_speed;
    s_.ramp_timer = kRampInterval;
  }

  int game_act(int a) override {
    int r = 0;
    if (s_.spawn_timer == 0) {
      spawn();
      s_.spawn_timer = s_.spawn_speed;
    }
    if (a == kLeft) s_.player_x = std::max(0, s_.player_x - 1);
    if (a == kRight) s_.player_x = std::min(9, s_.player_x + 1);
    if (a == kUp) s_.player_y = std::max(1, s_.player_y - 1);
    if (a == kDown) s_.player_y = std::min(8, s_.player_y + 1);

    for (Entity& e : s_.slots)
      if (e.alive) touch(e, r);
    if (s_.move_timer == 0) {
      s_.move_timer = s_.move_speed;
      for (Entity& e : s_.slots) {
        if (!e.alive) continue;
        e.x += e.right ? 1 : -1;
        if (e.x < 0 || e.x > 9) {
          e.alive = 0;
        } else {
          touch(e, r);
        }
      }
    }
    s_.spawn_timer -= 1;
    s_.move_timer -= 1;

    if (ramping_ && (s_.spawn_speed > 1 || s_.move_speed > 1)) {
      if (s_.ramp_timer >= 0) {
        s_.ramp_timer -= 1;
      } else {
        if (s_.move_speed > 1 && s_.ramp_index % 2) s_.move_speed -= 1;
        if (s_.spawn_speed > 1) s_.spawn_speed -= 1;
        s_.ramp_index += 1;
        s_.ramp_timer = kRampInterval;
      }
    }
    return r;
  }

  void render(float* out) const override {
    mark(out, kPlayer, s_.player_y, s_.player_x);
    for (const Entity& e : s_.slots) {
      if (!e.alive) continue;
      mark(out, e.gold ? kGold : kEnemy, e.y, e.x);
      const int back_x = e.right ? e.x - 1 : e.x + 1;
      if (on_grid(back_x)) mark(out, kTrail, e.y, back_x);
    }
  }

  void save_game(StateWriter& w) const override { w.put(s_); }

  void load_game(StateReader& r) override {
    const State s = r.get<State>();
    r.expect_end();
    bool ok = on_grid(s.player_x) && s.player_y >= 1 && s.player_y <= 8 && s.spawn_speed >= 1 &&
              s.move_speed >= 1 && s.spawn_timer >= 0 && s.move_timer >= 0;
    for (int i = 0; i < kSlots; ++i) {
      const Entity& e = s.slots[i];
      ok = ok && is_flag(e.alive) &&
           (!e.alive || (on_grid(e.x) && e.y == i + 1 && is_flag(e.right) && is_flag(e.gold)));
    }
    if (!ok) throw std::runtime_error("Asterix state is malformed");
    s_ = s;
  }

 private:
  // Meeting the player: gold is collected, an enemy ends the episode.
  void touch(Entity& e, int& r) {
    if (e.x != s_.player_x || e.y != s_.player_y) return;
    if (e.gold) {
      e.alive = 0;
      r += 1;
    } else {
      terminal_ = true;
    }
  }

  void spawn() {
    // Both coins are drawn even when every row is taken.
    const bool right = rng_.rand() < 1.0 / 2;
    const bool gold = rng_.rand() < 1.0 / 3;
    int free[kSlots];
    int n = 0;
    for (int i = 0; i < kSlots; ++i)
      if (!s_.slots[i].alive) free[n++] = i;
    if (n == 0) return;
    const int slot = free[rng_.randint(n)];
    s_.slots[slot] = Entity{1, right ? 0 : 9, slot + 1, right, gold};
  }

  State s_{};
};

const bool registered = register_env<Asterix>(
    "MinAtar/Asterix",
    "MinAtar Asterix (minatar 1.0.15): 4x10x10 binary frames, 6 actions (minimal: 5), "
    "sticky actions 0.1, difficulty ramping");

}  // namespace
}  // namespace stoch::rl::minatar
