#include "rl/dqn/evaluation.h"

#include <cmath>
#include <vector>

#include "rl/dqn/acting.h"
#include "rl/vector_env.h"

namespace stoch::rl {
namespace {

double mean(const std::vector<double>& x) {
  double s = 0.0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

// The sample standard deviation (n - 1), as torch.std reports it.
double sample_std(const std::vector<double>& x) {
  if (x.size() < 2) return 0.0;
  const double mu = mean(x);
  double ss = 0.0;
  for (double v : x) ss += (v - mu) * (v - mu);
  return std::sqrt(ss / static_cast<double>(x.size() - 1));
}

}  // namespace

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
  return {{"eval/return_mean", mean(returns)},
          {"eval/return_std", sample_std(returns)},
          {"eval/length_mean", mean(lengths)},
          {"eval/episodes", static_cast<double>(returns.size())}};
}

}  // namespace stoch::rl
