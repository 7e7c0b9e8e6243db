// Steps each registered environment (or those named on the command line) with uniformly random
// actions on one thread, reading the observation after every step and resetting when an episode
// ends, as an actor would. Prints a Markdown table of steps per second.
// usage: env_bench [--seconds=S] [ENV...]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/registry.h"
#include "core/rng.h"
#include "rl/envs/env.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  double steps_per_s;
  double episodes_per_s;
};

Result bench(const std::string& name, double seconds) {
  using namespace stoch::rl;
  auto env = stoch::registry<EnvEntry>().get(name, "env").make(EnvOptions{});
  int64_t obs_size = 1;
  for (int64_t d : env->observation_shape()) obs_size *= d;
  std::vector<float> obs(obs_size);
  const uint64_t num_actions = env->num_actions();
  env->seed(1);
  env->reset();
  stoch::Rng actions(2);  // a few nanoseconds a draw: the environment dominates
  float reward_sum = 0;   // consumed below so nothing is optimised away
  int64_t steps = 0, episodes = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  // The clock is read once per batch so that it costs nothing per step.
  constexpr int kBatch = 4096;
  while (elapsed < seconds) {
    for (int i = 0; i < kBatch; ++i) {
      const StepResult r = env->step(static_cast<int>(actions.below(num_actions)));
      reward_sum += r.reward;
      if (r.terminated || r.truncated) {
        env->reset();
        ++episodes;
      }
      env->observe(obs.data());
    }
    steps += kBatch;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  if (reward_sum == 1.2345f) std::printf("%g\n", obs[0]);
  return {steps / elapsed, episodes / elapsed};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) {
      seconds = std::atof(arg.c_str() + 10);
    } else {
      names.push_back(arg);
    }
  }
  if (names.empty()) names = stoch::registry<stoch::rl::EnvEntry>().names();
  if (names.empty()) {
    std::fprintf(stderr, "env_bench: no environments are registered\n");
    return 1;
  }
  std::printf("| env | steps/s | episodes/s |\n|---|---:|---:|\n");
  try {
    for (const auto& name : names) {
      const Result r = bench(name, seconds);
      std::printf("| %s | %.0f | %.0f |\n", name.c_str(), r.steps_per_s, r.episodes_per_s);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "env_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
