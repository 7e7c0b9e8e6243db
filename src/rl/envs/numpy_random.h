// numpy's legacy np.random.RandomState (MT19937) for the draws MinAtar makes: the same 32-bit
// words are consumed in the same order, so a stream seeded with s matches RandomState(s) exactly.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "rl/state_io.h"

namespace stoch::rl {

class NumpyRandom {
 public:
  explicit NumpyRandom(uint32_t seed = 0) { seed_with(seed); }

  // RandomState(seed) for an integer seed in [0, 2**32).
  void seed_with(uint32_t seed);

  // One raw MT19937 output.
  uint32_t next_uint32();
  // rand() / random_sample(): 53 random bits from two words.
  double rand();
  // randint(low, high): uniform on [low, high) by masked rejection, as legacy randint does.
  int64_t randint(int64_t low, int64_t high);
  int64_t randint(int64_t high) { return randint(0, high); }
  // choice(n) with replacement and no weights: randint(0, n).
  int64_t choice(int64_t n) { return randint(0, n); }
  // choice(len(p), p=p) with replacement: one rand() against the normalised cumulative sum.
  int64_t choice(const std::vector<double>& p);

  void save(StateWriter& w) const;
  void load(StateReader& r);

  bool operator==(const NumpyRandom& o) const { return key_ == o.key_ && pos_ == o.pos_; }

 private:
  static constexpr int kN = 624;
  void regenerate();

  std::array<uint32_t, kN> key_{};
  int pos_ = kN;
};

}  // namespace stoch::rl
