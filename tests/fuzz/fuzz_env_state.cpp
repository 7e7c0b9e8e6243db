// The state a checkpoint holds for a vector of environments (every registered environment: the
// classic-control tasks and MinAtar's games), loaded and then stepped: a state that loads must
// give a world the dynamics can run. Input: one byte choosing the environment, then the state.
#include <cstdlib>

#include "core/registry.h"
#include "fuzz_target.h"
#include "rl/envs/env.h"
#include "rl/vector_env.h"

namespace stoch::fuzz {
namespace {

constexpr int kEnvs = 2;

std::string env_name(unsigned char selector) {
  const auto names = registry<rl::EnvEntry>().names();
  return names[selector % names.size()];
}

void run(rl::VectorEnv& envs, int steps, uint64_t seed) {
  std::vector<int> actions(kEnvs);
  for (int t = 0; t < steps; ++t) {
    for (int i = 0; i < kEnvs; ++i)
      actions[i] = static_cast<int>((seed + 7 * t + i) % envs.num_actions());
    envs.step(actions.data());
    for (int64_t j = 0; j < envs.obs_size() * kEnvs; ++j)
      if (envs.observations()[j] != envs.observations()[j]) std::abort();  // a NaN observation
  }
}

}  // namespace

void fuzz_one(const std::string& input) {
  if (input.empty()) return;
  rl::VectorEnv envs(env_name(static_cast<unsigned char>(input[0])), rl::EnvOptions{}, kEnvs, 1);
  envs.load_state(input.substr(1));
  run(envs, 40, 3);
}

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds;
  const auto names = registry<rl::EnvEntry>().names();
  for (size_t k = 0; k < names.size(); ++k)
    for (const int steps : {0, 25, 300}) {
      rl::VectorEnv envs(names[k], rl::EnvOptions{}, kEnvs, 5 + steps);
      run(envs, steps, k);
      seeds.push_back(std::string(1, static_cast<char>(k)) + envs.save_state());
    }
  return seeds;
}

}  // namespace stoch::fuzz
