// How the DQN agent acts: epsilon-greedy over its greedy action, with random numbers drawn
// from streams of their own (mix_seed tags), so that acting, evaluation and the hooks' probe
// states never share numbers.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace stoch::rl {

enum DqnStream : uint64_t { kEnvStream = 1, kActing = 2, kEval = 3, kEvalEnv = 4, kProbe = 5 };

// Picks an action per env: uniform with probability epsilon, else the greedy one, which
// `greedy(rows)` fills in for the rows left. The random draws do not depend on the Q-values,
// so exploration replays exactly on resume.
template <class Greedy>
void epsilon_greedy(Rng& rng, double epsilon, int num_actions, std::vector<int>& actions,
                    Greedy greedy) {
  std::vector<int> need;
  for (size_t i = 0; i < actions.size(); ++i) {
    if (rng.uniform() < epsilon)
      actions[i] = static_cast<int>(rng.below(static_cast<uint64_t>(num_actions)));
    else
      need.push_back(static_cast<int>(i));
  }
  if (!need.empty()) greedy(need);
}

}  // namespace stoch::rl
