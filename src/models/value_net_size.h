// The size of a value network from its config, for memory estimates (train/memory_estimate.h).
#pragma once

#include <cstdint>
#include <vector>

namespace stoch::models {

struct ValueNetConfig;

// Parameters of the network these arguments build. It is built on the CPU and counted, since
// the torsos have no closed-form count; RL networks are small beside their replay buffers.
int64_t value_net_parameter_count(const ValueNetConfig& cfg,
                                  const std::vector<int64_t>& input_shape, int64_t outputs);

}  // namespace stoch::models
