#include "rl/envs/numpy_random.h"

#include <stdexcept>

namespace stoch::rl {
namespace {

constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpper = 0x80000000U;
constexpr uint32_t kLower = 0x7fffffffU;

inline uint32_t twist(uint32_t a, uint32_t b, uint32_t far) {
  const uint32_t y = (a & kUpper) | (b & kLower);
  return far ^ (y >> 1) ^ ((0U - (y & 1U)) & kMatrixA);
}

// Smallest all-ones mask covering rng (numpy's gen_mask).
inline uint64_t mask_for(uint64_t rng) {
  uint64_t mask = rng;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  return mask;
}

}  // namespace

void NumpyRandom::seed_with(uint32_t seed) {
  // Knuth's linear initialisation, the same as numpy's mt19937_seed.
  key_[0] = seed;
  for (int i = 1; i < kN; ++i) {
    key_[i] = 1812433253U * (key_[i - 1] ^ (key_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  pos_ = kN;
}

void NumpyRandom::regenerate() {
  int i = 0;
  for (; i < kN - kM; ++i) key_[i] = twist(key_[i], key_[i + 1], key_[i + kM]);
  for (; i < kN - 1; ++i) key_[i] = twist(key_[i], key_[i + 1], key_[i + kM - kN]);
  key_[kN - 1] = twist(key_[kN - 1], key_[0], key_[kM - 1]);
  pos_ = 0;
}

uint32_t NumpyRandom::next_uint32() {
  if (pos_ >= kN) regenerate();
  uint32_t y = key_[pos_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= y >> 18;
  return y;
}

double NumpyRandom::rand() {
  const uint32_t a = next_uint32() >> 5;
  const uint32_t b = next_uint32() >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

int64_t NumpyRandom::randint(int64_t low, int64_t high) {
  if (high <= low) throw std::invalid_argument("NumpyRandom::randint: low >= high");
  // numpy works on the closed range [low, high - 1] and draws nothing when it is one value.
  const uint64_t rng = static_cast<uint64_t>(high) - 1 - static_cast<uint64_t>(low);
  if (rng == 0) return low;
  const uint64_t mask = mask_for(rng);
  uint64_t v;
  if (rng <= 0xffffffffULL) {
    do {
      v = next_uint32() & mask;
    } while (v > rng);
  } else {
    // 64-bit ranges take two words per try, the first as the high half.
    do {
      const uint64_t hi = next_uint32();
      v = ((hi << 32) | next_uint32()) & mask;
    } while (v > rng);
  }
  return static_cast<int64_t>(static_cast<uint64_t>(low) + v);
}

int64_t NumpyRandom::choice(const std::vector<double>& p) {
  if (p.empty()) throw std::invalid_argument("NumpyRandom::choice: empty probabilities");
  // cdf = p.cumsum(); cdf /= cdf[-1]; cdf.searchsorted(rand(), side='right')
  std::vector<double> cdf(p.size());
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) cdf[i] = sum += p[i];
  const double total = cdf.back();
  for (double& c : cdf) c /= total;
  const double u = rand();
  size_t idx = 0;
  while (idx < cdf.size() && cdf[idx] <= u) ++idx;
  return static_cast<int64_t>(idx);
}

void NumpyRandom::save(StateWriter& w) const {
  for (uint32_t k : key_) w.put(k);
  w.put<int32_t>(pos_);
}

void NumpyRandom::load(StateReader& r) {
  std::array<uint32_t, kN> key;
  for (uint32_t& k : key) k = r.get<uint32_t>();
  const int32_t pos = r.get<int32_t>();
  if (pos < 0 || pos > kN) throw std::runtime_error("random state has a bad position");
  key_ = key;
  pos_ = pos;
}

}  // namespace stoch::rl
