// A replay buffer's checkpointed state (uniform or prioritised, float or bit-packed
// observations, one-step or n-step), loaded and then sampled, re-prioritised and added to.
// Input: one byte choosing the buffer's options, then the state.
#include <cstdlib>

#include "core/rng.h"
#include "fuzz_target.h"
#include "rl/replay_buffer.h"

namespace stoch::fuzz {
namespace {

rl::ReplayOptions options(unsigned char selector) {
  rl::ReplayOptions o;
  o.capacity = 16;
  o.obs_size = 3;
  o.binary = selector & 1;
  o.prioritized = selector & 2;
  o.n_step = selector & 4 ? 3 : 1;
  o.num_envs = selector & 8 ? 2 : 1;
  o.num_actions = 4;
  return o;
}

void add_rows(rl::ReplayBuffer& buffer, int rows, uint64_t seed) {
  const auto& o = buffer.options();
  Rng rng(seed);
  std::vector<float> obs(o.num_envs * o.obs_size), next(obs.size()), rewards(o.num_envs);
  std::vector<int> actions(o.num_envs);
  std::vector<uint8_t> term(o.num_envs), trunc(o.num_envs);
  for (int r = 0; r < rows; ++r) {
    for (auto& x : obs) x = o.binary ? static_cast<float>(rng.below(2)) : rng.uniform();
    for (auto& x : next) x = o.binary ? static_cast<float>(rng.below(2)) : rng.uniform();
    for (int e = 0; e < o.num_envs; ++e) {
      actions[e] = static_cast<int>(rng.below(4));
      rewards[e] = rng.uniform() - 0.5f;
      term[e] = rng.below(10) == 0;
      trunc[e] = !term[e] && rng.below(10) == 0;
    }
    buffer.add(obs.data(), actions.data(), rewards.data(), next.data(), term.data(), trunc.data());
  }
}

void use(rl::ReplayBuffer& buffer) {
  if (buffer.num_sampleable() == 0) return;
  Rng rng(9);
  const int batch = 5;
  rl::ReplaySampleArrays arrays(batch, buffer.options().obs_size);
  buffer.sample(batch, rng, arrays.view());
  for (const auto w : arrays.weights)
    if (!(w >= 0)) std::abort();  // importance weights are probabilities' ratios
  if (buffer.options().prioritized) {
    std::vector<float> td = {0.5f, -2.0f, 0.0f, 1e-3f, 7.0f};
    buffer.update_priorities(arrays.ids.data(), td.data(), batch);
  }
  add_rows(buffer, 2, 4);
  if (buffer.num_sampleable() > 0) buffer.sample(batch, rng, arrays.view());
}

}  // namespace

void fuzz_one(const std::string& input) {
  if (input.empty()) return;
  rl::ReplayBuffer buffer(options(static_cast<unsigned char>(input[0])));
  buffer.load_state(input.substr(1));
  use(buffer);
}

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds;
  for (unsigned char s = 0; s < 16; ++s)
    for (const int rows : {0, 5, 40}) {
      rl::ReplayBuffer buffer(options(s));
      add_rows(buffer, rows, s + rows);
      seeds.push_back(std::string(1, static_cast<char>(s)) + buffer.save_state());
    }
  return seeds;
}

}  // namespace stoch::fuzz
