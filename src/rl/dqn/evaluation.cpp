#include "rl/dqn/evaluation.h"

#include <torch/torch.h>

#include <vector>

#include "rl/dqn/acting.h"
#include "rl/vector_env.h"

namespace stoch::rl {

Metrics evaluate_policy(const EvalProtocol& protocol, int64_t step,
                        const std::function<int(const float* obs)>& greedy) {
  VectorEnv env(protocol.env.name, protocol.env.options(), 1,
                mix_seed(protocol.seed, kEvalEnv, static_cast<uint64_t>(step)));
  Rng rng(mix_seed(protocol.seed, kEval, static_cast<uint64_t>(step)));
  std::vector<int> action(1, 0);
  std::vector<double> returns, lengths;
  while (static_cast<int64_t>(returns.size()) < protocol.episodes) {
    epsilon_greedy(rng, protocol.epsilon, env.num_actions(), action,
                   [&](const std::vector<int>&) { action[0] = greedy(env.observations()); });
    for (const auto& end : env.step(action.data())) {
      returns.push_back(end.episode_return);
      lengths.push_back(static_cast<double>(end.length));
    }
  }
  const auto r = torch::tensor(returns, torch::kDouble);
  return {{"eval/return_mean", r.mean().item<double>()},
          {"eval/return_std", returns.size() > 1 ? r.std().item<double>() : 0.0},
          {"eval/length_mean", torch::tensor(lengths, torch::kDouble).mean().item<double>()},
          {"eval/episodes", static_cast<double>(returns.size())}};
}

}  // namespace stoch::rl
