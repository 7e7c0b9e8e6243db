#include "rl/dqn/evaluation.h"

#include <torch/torch.h>

#include <climits>
#include <memory>
#include <vector>

#include "rl/dqn/acting.h"
#include "rl/vector_env.h"

namespace stoch::rl {

Metrics evaluate_policy(const EvalProtocol& protocol, int64_t step,
                        const std::function<int(const float* obs)>& greedy) {
  const uint64_t env_seed = mix_seed(protocol.seed, kEvalEnv, static_cast<uint64_t>(step));
  EnvOptions options = protocol.env.options();
  auto env = std::make_unique<VectorEnv>(protocol.env.name, options, 1, env_seed);
  // The cap is the environment's own time limit where it has none (seeded alike, so episodes
  // that end before it are the same).
  const bool capped = env->env(0).time_limit() == 0 && protocol.max_steps > 0;
  if (capped) {
    options.max_episode_steps = static_cast<int>(std::min<int64_t>(protocol.max_steps, INT_MAX));
    env = std::make_unique<VectorEnv>(protocol.env.name, options, 1, env_seed);
  }
  Rng rng(mix_seed(protocol.seed, kEval, static_cast<uint64_t>(step)));
  std::vector<int> action(1, 0);
  std::vector<double> returns, lengths;
  int64_t truncated = 0;
  while (static_cast<int64_t>(returns.size()) < protocol.episodes) {
    epsilon_greedy(rng, protocol.epsilon, env->num_actions(), action,
                   [&](const std::vector<int>&) { action[0] = greedy(env->observations()); });
    for (const auto& end : env->step(action.data())) {
      returns.push_back(end.episode_return);
      lengths.push_back(static_cast<double>(end.length));
      // Only the cap's cuts: an episode that reaches the environment's own time limit (a
      // perfect CartPole's 500 steps) ended as the environment defines it.
      truncated += capped && end.truncated ? 1 : 0;
    }
  }
  const auto r = torch::tensor(returns, torch::kDouble);
  return {{"eval/return_mean", r.mean().item<double>()},
          {"eval/return_std", returns.size() > 1 ? r.std().item<double>() : 0.0},
          {"eval/length_mean", torch::tensor(lengths, torch::kDouble).mean().item<double>()},
          {"eval/episodes", static_cast<double>(returns.size())},
          {"eval/truncated", static_cast<double>(truncated)}};
}

}  // namespace stoch::rl
