// MinAtar Breakout (minatar 1.0.15 breakout.py): a paddle on the bottom row, a ball moving on
// diagonals and three rows of bricks, refilled once all are gone. No difficulty ramp.
#include <algorithm>
#include <memory>
#include <type_traits>

#include "core/registry.h"
#include "rl/envs/minatar_env.h"

namespace stoch::rl::minatar {
namespace {

enum Channel { kPaddle, kBall, kTrail, kBrick, kChannels };

// Ball directions: 0 up-left, 1 up-right, 2 down-right, 3 down-left.
constexpr int kDx[4] = {-1, 1, 1, -1};
constexpr int kDy[4] = {-1, -1, 1, 1};
constexpr int kFlipX[4] = {1, 0, 3, 2};
constexpr int kFlipY[4] = {3, 2, 1, 0};
constexpr int kFlipBoth[4] = {2, 3, 0, 1};

struct State {
  int32_t ball_x, ball_y, ball_dir, pos, last_x, last_y, strike;
  uint8_t bricks[kSize][kSize];
};
static_assert(std::has_unique_object_representations_v<State>, "saved as raw bytes");

inline bool on_grid(int v) {
  return v >= 0 && v < kSize;
}

class Breakout : public MinAtarEnv {
 public:
  // One ball breaks at most one brick a step.
  RewardRange reward_range() const override { return {0, 1}; }
  explicit Breakout(const EnvOptions& o)
      : MinAtarEnv(o, kChannels, 0x4d414231 /* MAB1 */, {kNoop, kLeft, kRight}) {
    start();
  }

 protected:
  void game_reset() override {
    s_ = State{};
    s_.ball_y = 3;
    const bool right = rng_.randint(2) == 1;
    s_.ball_x = right ? 9 : 0;
    s_.ball_dir = right ? 3 : 2;
    s_.pos = 4;
    fill_bricks();
    s_.last_x = s_.ball_x;
    s_.last_y = s_.ball_y;
  }

  int game_act(int a) override {
    int r = 0;
    if (a == kLeft) s_.pos = std::max(0, s_.pos - 1);
    if (a == kRight) s_.pos = std::min(9, s_.pos + 1);

    s_.last_x = s_.ball_x;
    s_.last_y = s_.ball_y;
    int nx = s_.ball_x + kDx[s_.ball_dir];
    int ny = s_.ball_y + kDy[s_.ball_dir];
    bool strike_toggle = false;
    if (nx < 0 || nx > 9) {
      nx = std::clamp(nx, 0, 9);
      s_.ball_dir = kFlipX[s_.ball_dir];
    }
    if (ny < 0) {
      ny = 0;
      s_.ball_dir = kFlipY[s_.ball_dir];
    } else if (s_.bricks[ny][nx]) {
      strike_toggle = true;
      // A ball that struck on the previous step passes into the next brick untouched.
      if (!s_.strike) {
        r += 1;
        s_.strike = 1;
        s_.bricks[ny][nx] = 0;
        ny = s_.last_y;
        s_.ball_dir = kFlipY[s_.ball_dir];
      }
    } else if (ny == 9) {
      if (brick_count() == 0) fill_bricks();
      if (s_.ball_x == s_.pos) {
        s_.ball_dir = kFlipY[s_.ball_dir];
        ny = s_.last_y;
      } else if (nx == s_.pos) {
        s_.ball_dir = kFlipBoth[s_.ball_dir];
        ny = s_.last_y;
      } else {
        terminal_ = true;
      }
    }
    if (!strike_toggle) s_.strike = 0;
    s_.ball_x = nx;
    s_.ball_y = ny;
    return r;
  }

  void render(float* out) const override {
    mark(out, kBall, s_.ball_y, s_.ball_x);
    mark(out, kPaddle, 9, s_.pos);
    mark(out, kTrail, s_.last_y, s_.last_x);
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x)
        if (s_.bricks[y][x]) mark(out, kBrick, y, x);
  }

  void save_game(StateWriter& w) const override { w.put(s_); }

  void load_game(StateReader& r) override {
    const State s = r.get<State>();
    r.expect_end();
    bool ok = on_grid(s.ball_x) && on_grid(s.ball_y) && on_grid(s.pos) && on_grid(s.last_x) &&
              on_grid(s.last_y) && s.ball_dir >= 0 && s.ball_dir < 4 &&
              (s.strike == 0 || s.strike == 1);
    for (const auto& row : s.bricks)
      for (uint8_t b : row) ok = ok && b <= 1;
    if (!ok) throw std::runtime_error("Breakout state is malformed");
    s_ = s;
  }

 private:
  void fill_bricks() {
    for (int y = 1; y < 4; ++y) std::fill(s_.bricks[y], s_.bricks[y] + kSize, 1);
  }
  int brick_count() const {
    int n = 0;
    for (const auto& row : s_.bricks)
      for (uint8_t b : row) n += b;
    return n;
  }

  State s_{};
};

const bool registered = register_env<Breakout>(
    "MinAtar/Breakout",
    "MinAtar Breakout (minatar 1.0.15): 4x10x10 binary frames, 6 actions (minimal: 3), "
    "sticky actions 0.1");

}  // namespace
}  // namespace stoch::rl::minatar
