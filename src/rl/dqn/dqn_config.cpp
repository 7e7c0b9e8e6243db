#include "rl/dqn/dqn_config.h"

#include "core/registry.h"

namespace stoch::rl {

std::vector<std::string> EnvConfig::env_names() {
  return registry<EnvEntry>().names();
}

EnvOptions EnvConfig::options() const {
  EnvOptions o;
  o.max_episode_steps = static_cast<int>(max_episode_steps);
  o.sticky_action_prob = static_cast<float>(sticky_action_prob);
  o.difficulty_ramping = difficulty_ramping;
  o.minimal_action_set = minimal_action_set;
  return o;
}

}  // namespace stoch::rl
