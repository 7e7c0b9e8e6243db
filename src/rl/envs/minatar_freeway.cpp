// MinAtar Freeway (minatar 1.0.15 freeway.py): a chicken in column 4 crosses eight lanes of
// cars. Reaching the top pays 1 and re-draws the car speeds; a car sends the chicken back to the
// bottom. The episode ends after 2500 steps. No difficulty ramp.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "core/registry.h"
#include "rl/envs/minatar_env.h"

namespace stoch::rl::minatar {
namespace {

enum Channel { kChicken, kCar, kSpeed1, kChannels = kSpeed1 + 5 };

constexpr int kPlayerSpeed = 3;
constexpr int kTimeLimit = 2500;
constexpr int kCars = 8;
constexpr int kChickenX = 4;

// speed: signed frames per move (sign is the direction); timer counts down to the next move.
struct Car {
  int32_t x, y, timer, speed;
};
struct State {
  int32_t pos, move_timer, terminate_timer;
  Car cars[kCars];
};
static_assert(std::has_unique_object_representations_v<State>, "saved as raw bytes");

class Freeway : public MinAtarEnv {
 public:
  // 1 for reaching the far side.
  RewardRange reward_range() const override { return {0, 1}; }
  explicit Freeway(const EnvOptions& o)
      : MinAtarEnv(o, kChannels, 0x4d414631 /* MAF1 */, {kNoop, kUp, kDown}) {
    start();
  }

 protected:
  void game_reset() override {
    s_ = State{};
    randomize_cars(true);
    s_.pos = 9;
    s_.move_timer = kPlayerSpeed;
    s_.terminate_timer = kTimeLimit;
  }

  int game_act(int a) override {
    int r = 0;
    if (a == kUp && s_.move_timer == 0) {
      s_.move_timer = kPlayerSpeed;
      s_.pos = std::max(0, s_.pos - 1);
    } else if (a == kDown && s_.move_timer == 0) {
      s_.move_timer = kPlayerSpeed;
      s_.pos = std::min(9, s_.pos + 1);
    }
    if (s_.pos == 0) {
      r += 1;
      randomize_cars(false);
      s_.pos = 9;
    }
    for (Car& car : s_.cars) {
      if (hits(car)) s_.pos = 9;
      if (car.timer == 0) {
        car.timer = std::abs(car.speed);
        car.x += car.speed > 0 ? 1 : -1;
        if (car.x < 0) car.x = 9;
        if (car.x > 9) car.x = 0;
        if (hits(car)) s_.pos = 9;
      } else {
        car.timer -= 1;
      }
    }
    if (s_.move_timer > 0) s_.move_timer -= 1;
    s_.terminate_timer -= 1;
    if (s_.terminate_timer < 0) terminal_ = true;
    return r;
  }

  void render(float* out) const override {
    mark(out, kChicken, s_.pos, kChickenX);
    // Python keeps the previous car's trail channel for a speed of 0 (a rand() of exactly 0.5).
    int trail = kSpeed1;
    for (const Car& car : s_.cars) {
      mark(out, kCar, car.y, car.x);
      int back_x = car.speed > 0 ? car.x - 1 : car.x + 1;
      if (back_x < 0) back_x = 9;
      if (back_x > 9) back_x = 0;
      const int speed = std::abs(car.speed);
      if (speed >= 1 && speed <= 5) trail = kSpeed1 + speed - 1;
      mark(out, trail, car.y, back_x);
    }
  }

  void save_game(StateWriter& w) const override { w.put(s_); }

  void load_game(StateReader& r) override {
    const State s = r.get<State>();
    r.expect_end();
    bool ok = s.pos >= 0 && s.pos < kSize && s.move_timer >= 0;
    for (int i = 0; i < kCars; ++i) {
      const Car& c = s.cars[i];
      ok = ok && c.x >= 0 && c.x < kSize && c.y == i + 1 && c.timer >= 0 && std::abs(c.speed) <= 5;
    }
    if (!ok) throw std::runtime_error("Freeway state is malformed");
    s_ = s;
  }

 private:
  bool hits(const Car& car) const { return car.x == kChickenX && car.y == s_.pos; }

  // randint(1, 6, 8) speeds, then rand(8) signs; positions are kept unless initializing.
  void randomize_cars(bool initialize) {
    int speeds[kCars];
    for (int& v : speeds) v = static_cast<int>(rng_.randint(1, 6));
    for (int& v : speeds) {
      const double d = rng_.rand() - 0.5;
      v *= (d > 0) - (d < 0);  // np.sign, 0 at exactly 0.5
    }
    for (int i = 0; i < kCars; ++i) {
      Car& car = s_.cars[i];
      if (initialize) {
        car.x = 0;
        car.y = i + 1;
      }
      car.timer = std::abs(speeds[i]);
      car.speed = speeds[i];
    }
  }

  State s_{};
};

const bool registered = register_env<Freeway>(
    "MinAtar/Freeway",
    "MinAtar Freeway (minatar 1.0.15): 7x10x10 binary frames, 6 actions (minimal: 3), "
    "sticky actions 0.1, 2500-step episodes");

}  // namespace
}  // namespace stoch::rl::minatar
