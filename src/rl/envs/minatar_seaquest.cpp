// MinAtar Seaquest (minatar 1.0.15 seaquest.py): a two-cell submarine shoots fish and enemy subs,
// collects divers and must surface (with a diver aboard) before its oxygen runs out. Each
// surfacing raises the difficulty when ramping.
//
// The oxygen bar is 1.0.15's corrected one: it renders max(0, oxygen), so the final frame of an
// oxygen-out episode shows an empty bar. Versions before 1.0.11 (the MinAtar paper's) rendered
// oxygen*10//200 unclamped, and oxygen -1 lit 9 cells. Also as in 1.0.15: surfacing with six
// divers leaves the count at -1 (it is zeroed and then decremented), and list updates follow
// Python's list semantics exactly (see minatar_pylist.h).
#include <algorithm>
#include <memory>
#include <type_traits>

#include "core/registry.h"
#include "rl/envs/minatar_env.h"
#include "rl/envs/minatar_pylist.h"

namespace stoch::rl::minatar {
namespace {

enum Channel {
  kSubFront,
  kSubBack,
  kFriendlyBullet,
  kTrail,
  kEnemyBullet,
  kEnemyFish,
  kEnemySub,
  kOxygenGauge,
  kDiverGauge,
  kDiver,
  kChannels
};

constexpr int kMaxOxygen = 200;
constexpr int kInitSpawnSpeed = 20;
constexpr int kDiverSpawnSpeed = 30;
constexpr int kInitMoveInterval = 5;
constexpr int kShotCoolDown = 5;
constexpr int kEnemyShotInterval = 10;
constexpr int kDiverMoveInterval = 5;
constexpr uint32_t kMaxListLength = 1 << 16;  // sanity bound when loading

// Record fields, in the order of minatar's lists: [x, y, heading, move_timer, shot_timer],
// where heading 1 moves right (minatar's lr flag).
enum Field { kX, kY, kHeading, kMoveTimer, kShotTimer };
using Bullets = PyList<3>;
using Fish = PyList<4>;  // also divers
using Subs = PyList<5>;

constexpr int32_t kLowestDiverCount = -(1 << 30);

struct Scalars {
  int32_t oxygen, diver_count, sub_x, sub_y, sub_right, e_spawn_speed, e_spawn_timer, d_spawn_timer,
      move_speed, ramp_index, shot_timer, surface;
};
static_assert(std::has_unique_object_representations_v<Scalars>, "saved as raw bytes");

template <class R>
inline int step_x(const R& r) {
  return r[kX] + (r[kHeading] ? 1 : -1);
}
template <class A, class B>
inline bool same_cell(const A& a, const B& b) {
  return a[kX] == b[kX] && a[kY] == b[kY];
}
inline bool off_grid(int x) {
  return x < 0 || x > 9;
}

// numpy indexing: -1 is the last column; past the end Python would raise, so nothing is drawn.
inline void mark_py(float* out, int c, int y, int x) {
  if (x < 0) x += kSize;
  if (x >= 0 && x < kSize && y >= 0 && y < kSize) mark(out, c, y, x);
}

class Seaquest : public MinAtarEnv {
 public:
  // Surfacing with six divers pays up to 10 (the oxygen left, in tenths); a bullet kills
  // one enemy, lives at most ten steps (one cell a step) and reloads in five: three alive at
  // most.
  RewardRange reward_range() const override { return {0, 13}; }
  explicit Seaquest(const EnvOptions& o)
      : MinAtarEnv(o, kChannels, 0x4d415131 /* MAQ1 */, {kNoop, kLeft, kUp, kRight, kDown, kFire}) {
    start();
  }

 protected:
  void game_reset() override {
    s_ = Scalars{};
    s_.oxygen = kMaxOxygen;
    s_.sub_x = 5;
    s_.e_spawn_speed = kInitSpawnSpeed;
    s_.e_spawn_timer = s_.e_spawn_speed;
    s_.d_spawn_timer = kDiverSpawnSpeed;
    s_.move_speed = kInitMoveInterval;
    s_.surface = 1;
    f_bullets_.clear();
    e_bullets_.clear();
    fish_.clear();
    subs_.clear();
    divers_.clear();
  }

  int game_act(int a) override {
    int r = 0;
    if (s_.e_spawn_timer == 0) {
      spawn_enemy();
      s_.e_spawn_timer = s_.e_spawn_speed;
    }
    if (s_.d_spawn_timer == 0) {
      spawn_diver();
      s_.d_spawn_timer = kDiverSpawnSpeed;
    }
    if (a == kFire && s_.shot_timer == 0) {
      f_bullets_.append({s_.sub_x, s_.sub_y, s_.sub_right});
      s_.shot_timer = kShotCoolDown;
    } else if (a == kLeft) {
      s_.sub_x = std::max(0, s_.sub_x - 1);
      s_.sub_right = 0;
    } else if (a == kRight) {
      s_.sub_x = std::min(9, s_.sub_x + 1);
      s_.sub_right = 1;
    } else if (a == kUp) {
      s_.sub_y = std::max(0, s_.sub_y - 1);
    } else if (a == kDown) {
      s_.sub_y = std::min(8, s_.sub_y + 1);
    }
    update_friendly_bullets(r);
    update_divers();
    update_subs(r);
    update_enemy_bullets();
    update_fish(r);

    if (s_.e_spawn_timer > 0) s_.e_spawn_timer -= 1;
    if (s_.d_spawn_timer > 0) s_.d_spawn_timer -= 1;
    if (s_.shot_timer > 0) s_.shot_timer -= 1;
    if (s_.oxygen <= 0) terminal_ = true;
    if (s_.sub_y > 0) {
      s_.oxygen -= 1;
      s_.surface = 0;
    } else if (!s_.surface) {
      if (s_.diver_count == 0) {
        terminal_ = true;
      } else {
        r += surface();
      }
    }
    return r;
  }

  void render(float* out) const override {
    mark(out, kSubFront, s_.sub_y, s_.sub_x);
    mark_py(out, kSubBack, s_.sub_y, s_.sub_right ? s_.sub_x - 1 : s_.sub_x + 1);
    const int oxygen_cells = std::max(0, s_.oxygen) * 10 / kMaxOxygen;
    for (int x = 0; x < std::min(oxygen_cells, kSize); ++x) mark(out, kOxygenGauge, 9, x);
    for (int x = std::max(0, 9 - s_.diver_count); x < 9; ++x) mark(out, kDiverGauge, 9, x);
    for (int i = 0; i < f_bullets_.size(); ++i)
      mark_py(out, kFriendlyBullet, f_bullets_[i][kY], f_bullets_[i][kX]);
    for (int i = 0; i < e_bullets_.size(); ++i)
      mark_py(out, kEnemyBullet, e_bullets_[i][kY], e_bullets_[i][kX]);
    for (int i = 0; i < fish_.size(); ++i) render_mover(out, fish_[i], kEnemyFish);
    for (int i = 0; i < subs_.size(); ++i) render_mover(out, subs_[i], kEnemySub);
    for (int i = 0; i < divers_.size(); ++i) render_mover(out, divers_[i], kDiver);
  }

  void save_game(StateWriter& w) const override {
    w.put(s_);
    f_bullets_.save(w);
    e_bullets_.save(w);
    fish_.save(w);
    subs_.save(w);
    divers_.save(w);
  }

  void load_game(StateReader& r) override {
    const Scalars s = r.get<Scalars>();
    Bullets f, e;
    Fish fish, divers;
    Subs subs;
    f.load(r, kMaxListLength);
    e.load(r, kMaxListLength);
    fish.load(r, kMaxListLength);
    subs.load(r, kMaxListLength);
    divers.load(r, kMaxListLength);
    r.expect_end();
    // Counters within what the game can reach (the oxygen and speeds are multiplied and
    // counted down: far outside these ranges they would overflow), and every mover on a row of
    // the grid with a heading and timers the game could have given it. The divers' count goes
    // below 0: minatar lowers it after paying for six, and at each later surfacing without any
    // (one a surfacing, so a game would need a billion of them to pass the bound).
    const auto within = [](int32_t v, int32_t lo, int32_t hi) { return v >= lo && v <= hi; };
    bool ok =
        within(s.sub_x, 0, kSize - 1) && within(s.sub_y, 0, kSize - 1) &&
        within(s.diver_count, kLowestDiverCount, 6) && within(s.oxygen, -kMaxOxygen, kMaxOxygen) &&
        within(s.e_spawn_speed, 1, kInitSpawnSpeed) && within(s.move_speed, 1, kInitMoveInterval) &&
        within(s.ramp_index, 0, 1 << 20) && within(s.e_spawn_timer, 0, kInitSpawnSpeed) &&
        within(s.d_spawn_timer, 0, kDiverSpawnSpeed) && within(s.shot_timer, 0, kShotCoolDown) &&
        within(s.sub_right, 0, 1) && within(s.surface, 0, 1);
    const auto movers_ok = [&](const auto& list) {
      for (int i = 0; i < list.size(); ++i) {
        const auto& m = list[i];
        if (!within(m[kX], -1, kSize) || !within(m[kY], 0, kSize - 1) || !within(m[kHeading], 0, 1))
          return false;
        // Timers start at most at the enemy shot interval, the longest of them, and count down.
        for (size_t k = kMoveTimer; k < m.size(); ++k)
          if (!within(m[k], 0, kEnemyShotInterval)) return false;
      }
      return true;
    };
    ok = ok && movers_ok(f) && movers_ok(e) && movers_ok(fish) && movers_ok(subs) &&
         movers_ok(divers);
    if (!ok) throw std::runtime_error("Seaquest state is malformed");
    s_ = s;
    f_bullets_ = std::move(f);
    e_bullets_ = std::move(e);
    fish_ = std::move(fish);
    subs_ = std::move(subs);
    divers_ = std::move(divers);
  }

 private:
  template <class R>
  bool at_sub(const R& r) const {
    return r[kX] == s_.sub_x && r[kY] == s_.sub_y;
  }

  template <class R>
  static void render_mover(float* out, const R& r, int channel) {
    mark_py(out, channel, r[kY], r[kX]);
    const int back_x = r[kHeading] ? r[kX] - 1 : r[kX] + 1;
    if (!off_grid(back_x)) mark(out, kTrail, r[kY], back_x);
  }

  // Each loop below walks its list backwards by position the way reversed() does: it stops
  // as soon as the position falls outside the (possibly shrunken) list.
  void update_friendly_bullets(int& r) {
    for (int i = f_bullets_.size() - 1; i >= 0 && i < f_bullets_.size(); --i) {
      auto& b = f_bullets_[i];
      b[kX] = step_x(b);
      if (off_grid(b[kX])) {
        f_bullets_.remove(b);
      } else if (!shoot_down(fish_, b, r)) {
        shoot_down(subs_, b, r);
      }
    }
  }

  // The first enemy sharing the bullet's cell dies with the bullet.
  template <class List>
  bool shoot_down(List& enemies, const Bullets::Record& b, int& r) {
    for (int j = 0; j < enemies.size(); ++j) {
      if (same_cell(b, enemies[j])) {
        enemies.remove(enemies[j]);
        f_bullets_.remove(b);
        r += 1;
        return true;
      }
    }
    return false;
  }

  // An enemy that just moved onto a friendly bullet: the first such bullet goes, and the caller
  // removes the enemy (separate lists, so the order of the two removals does not matter).
  template <class R>
  bool hit_by_bullet(const R& enemy, int& r) {
    for (int j = 0; j < f_bullets_.size(); ++j) {
      if (same_cell(enemy, f_bullets_[j])) {
        f_bullets_.remove(f_bullets_[j]);
        r += 1;
        return true;
      }
    }
    return false;
  }

  bool can_take_diver() const { return s_.diver_count < 6; }

  void update_divers() {
    for (int i = divers_.size() - 1; i >= 0 && i < divers_.size(); --i) {
      auto& d = divers_[i];
      if (at_sub(d) && can_take_diver()) {
        divers_.remove(d);
        s_.diver_count += 1;
      } else if (d[kMoveTimer] == 0) {
        d[kMoveTimer] = kDiverMoveInterval;
        d[kX] = step_x(d);
        if (off_grid(d[kX])) {
          divers_.remove(d);
        } else if (at_sub(d) && can_take_diver()) {
          divers_.remove(d);
          s_.diver_count += 1;
        }
      } else {
        d[kMoveTimer] -= 1;
      }
    }
  }

  void update_subs(int& r) {
    for (int i = subs_.size() - 1; i >= 0 && i < subs_.size(); --i) {
      auto& sub = subs_[i];
      if (at_sub(sub)) terminal_ = true;
      if (sub[kMoveTimer] == 0) {
        sub[kMoveTimer] = s_.move_speed;
        sub[kX] = step_x(sub);
        if (off_grid(sub[kX])) {
          subs_.remove(sub);
        } else if (at_sub(sub)) {
          terminal_ = true;
        } else if (hit_by_bullet(sub, r)) {
          subs_.remove(sub);
        }
      } else {
        sub[kMoveTimer] -= 1;
      }
      // A sub removed above still fires this step, as the loop variable does in Python.
      if (sub[kShotTimer] == 0) {
        sub[kShotTimer] = kEnemyShotInterval;
        e_bullets_.append({sub[kX], sub[kY], sub[kHeading]});
      } else {
        sub[kShotTimer] -= 1;
      }
    }
  }

  void update_enemy_bullets() {
    for (int i = e_bullets_.size() - 1; i >= 0 && i < e_bullets_.size(); --i) {
      auto& b = e_bullets_[i];
      if (at_sub(b)) terminal_ = true;
      b[kX] = step_x(b);
      if (off_grid(b[kX])) {
        e_bullets_.remove(b);
      } else if (at_sub(b)) {
        terminal_ = true;
      }
    }
  }

  void update_fish(int& r) {
    for (int i = fish_.size() - 1; i >= 0 && i < fish_.size(); --i) {
      auto& f = fish_[i];
      if (at_sub(f)) terminal_ = true;
      if (f[kMoveTimer] == 0) {
        f[kMoveTimer] = s_.move_speed;
        f[kX] = step_x(f);
        if (off_grid(f[kX])) {
          fish_.remove(f);
        } else if (at_sub(f)) {
          terminal_ = true;
        } else if (hit_by_bullet(f, r)) {
          fish_.remove(f);
        }
      } else {
        f[kMoveTimer] -= 1;
      }
    }
  }

  int surface() {
    s_.surface = 1;
    int r = 0;
    if (s_.diver_count == 6) {
      s_.diver_count = 0;
      r = floor_div(s_.oxygen * 10, kMaxOxygen);
    }
    s_.oxygen = kMaxOxygen;
    s_.diver_count -= 1;
    if (ramping_ && (s_.e_spawn_speed > 1 || s_.move_speed > 2)) {
      if (s_.move_speed > 2 && s_.ramp_index % 2) s_.move_speed -= 1;
      if (s_.e_spawn_speed > 1) s_.e_spawn_speed -= 1;
      s_.ramp_index += 1;
    }
    return r;
  }

  void spawn_enemy() {
    const int right = rng_.rand() < 1.0 / 2;
    const bool is_sub = rng_.rand() < 1.0 / 3;
    const int x = right ? 0 : 9;
    const int y = static_cast<int>(rng_.randint(1, 9));
    // No spawn into a row where something already travels the other way.
    for (int i = 0; i < subs_.size(); ++i)
      if (subs_[i][kY] == y && subs_[i][kHeading] != right) return;
    for (int i = 0; i < fish_.size(); ++i)
      if (fish_[i][kY] == y && fish_[i][kHeading] != right) return;
    if (is_sub) {
      subs_.append({x, y, right, s_.move_speed, kEnemyShotInterval});
    } else {
      fish_.append({x, y, right, s_.move_speed});
    }
  }

  void spawn_diver() {
    const int right = rng_.rand() < 1.0 / 2;
    const int y = static_cast<int>(rng_.randint(1, 9));
    divers_.append({right ? 0 : 9, y, right, kDiverMoveInterval});
  }

  Scalars s_{};
  Bullets f_bullets_, e_bullets_;
  Fish fish_, divers_;
  Subs subs_;
};

const bool registered = register_env<Seaquest>(
    "MinAtar/Seaquest",
    "MinAtar Seaquest (minatar 1.0.15, corrected oxygen bar): 10x10x10 binary frames, 6 actions "
    "(minimal: 6), sticky actions 0.1, difficulty ramping");

}  // namespace
}  // namespace stoch::rl::minatar
