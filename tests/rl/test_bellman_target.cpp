// The DQN bootstrap target against a hand computation: a six-transition replay with a
// truncation and a termination, 2-step returns, and Q-tables where double DQN and plain DQN
// pick different bootstrap actions; then C51's projected target on a support of unit spacing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "rl/dqn/bellman_target.h"
#include "rl/replay_buffer.h"
#include "value/value_loss.h"

namespace stoch {
namespace {

struct Step {
  float obs;
  int action;
  float reward;
  float next_obs;
  bool terminated, truncated;
};

// One env, observations are state numbers. Episode 1 is cut by its time limit after two
// steps, episode 2 terminates after two, episode 3 goes on.
const std::vector<Step> kSteps = {
    {0, 0, 1, 1, false, false},    {1, 1, 2, 2, false, true},    // truncated at state 2
    {10, 0, 4, 11, false, false},  {11, 1, 8, 12, true, false},  // terminated at 12
    {20, 0, 16, 21, false, false}, {21, 0, 32, 22, false, false},
};

// Q-tables per next state: {target network, online network}, one value per action. At 2 and
// 22 the two networks disagree on the best action.
const std::map<float, std::pair<std::vector<float>, std::vector<float>>> kQ = {
    {2, {{1, 3}, {5, 0}}}, {12, {{7, 9}, {9, 7}}}, {22, {{4, 2}, {0, 1}}}};

struct Batch {
  std::vector<float> obs, returns, discounts, next_obs;
};

// Every sampleable transition of a 2-step, gamma 0.5 replay holding kSteps, once each.
Batch sample_every_transition() {
  rl::ReplayOptions o;
  o.capacity = 16;
  o.obs_size = 1;
  o.n_step = 2;
  o.gamma = 0.5;
  rl::ReplayBuffer replay(o);
  for (const auto& s : kSteps) {
    const uint8_t term = s.terminated, trunc = s.truncated;
    replay.add(&s.obs, &s.action, &s.reward, &s.next_obs, &term, &trunc);
  }
  EXPECT_EQ(replay.num_sampleable(), 5);  // the newest row waits for its second step
  rl::ReplaySampleArrays arrays(256, 1);
  Rng rng(3);
  replay.sample(256, rng, arrays.view());
  Batch b;
  std::map<float, bool> seen;
  for (int i = 0; i < 256; ++i) {
    if (seen[arrays.obs[i]]) continue;
    seen[arrays.obs[i]] = true;
    b.obs.push_back(arrays.obs[i]);
    b.returns.push_back(arrays.returns[i]);
    b.discounts.push_back(arrays.discounts[i]);
    b.next_obs.push_back(arrays.next_obs[i]);
  }
  EXPECT_EQ(b.obs.size(), 5u);
  return b;
}

torch::Tensor tensor(const std::vector<float>& v) {
  return torch::tensor(v, torch::kFloat);
}

// [B, 2, 1] heads of a scalar loss from the Q-table of each next state.
torch::Tensor scalar_heads(const Batch& b, bool online) {
  std::vector<float> q;
  for (float s : b.next_obs) {
    const auto& row = online ? kQ.at(s).second : kQ.at(s).first;
    q.insert(q.end(), row.begin(), row.end());
  }
  return tensor(q).view({static_cast<int64_t>(b.obs.size()), 2, 1});
}

TEST(BellmanTarget, NStepDoubleDqnAndTruncationMatchAHandComputation) {
  const Batch b = sample_every_transition();
  value::ValueLossConfig cfg;
  cfg.loss = "mse";
  const auto loss = value::make_value_loss(cfg);
  const auto plain = rl::bellman_target(*loss, scalar_heads(b, false), {}, tensor(b.returns),
                                        tensor(b.discounts), false);
  const auto dbl = rl::bellman_target(*loss, scalar_heads(b, false), scalar_heads(b, true),
                                      tensor(b.returns), tensor(b.discounts), false);
  // By hand, gamma 0.5, n 2. The truncated episode still bootstraps (from its final state 2);
  // the terminated one does not; a window stops at the episode's end.
  //   state 0:  1 + 0.5 * 2 = 2,   discount 0.25, next 2:  plain 2 + 0.25 * 3, double + 0.25 * 1
  //   state 1:  2,                 discount 0.5,  next 2:  plain 2 + 0.5 * 3,  double + 0.5 * 1
  //   state 10: 4 + 0.5 * 8 = 8,   discount 0 (terminated at 12)
  //   state 11: 8,                 discount 0
  //   state 20: 16 + 0.5 * 32 = 32, discount 0.25, next 22: plain + 0.25 * 4, double + 0.25 * 2
  const std::map<float, std::pair<double, double>> expected = {
      {0, {2.75, 2.25}}, {1, {3.5, 2.5}}, {10, {8, 8}}, {11, {8, 8}}, {20, {33, 32.5}}};
  for (size_t i = 0; i < b.obs.size(); ++i) {
    const auto& [want_plain, want_double] = expected.at(b.obs[i]);
    EXPECT_FLOAT_EQ(plain.scalar[static_cast<int64_t>(i)].item<float>(), want_plain)
        << "state " << b.obs[i];
    EXPECT_FLOAT_EQ(dbl.scalar[static_cast<int64_t>(i)].item<float>(), want_double)
        << "state " << b.obs[i];
  }
  EXPECT_FALSE(plain.distribution.defined());
}

TEST(BellmanTarget, C51ShiftsAndProjectsTheChosenActionsDistribution) {
  // Atoms -10, -9, ..., 10 (index = value + 10). Row 0: action 0 puts all its mass on 4,
  // action 1 half on 3 and half on 7 (mean 5), so the bootstrap action is 1.
  value::ValueLossConfig cfg;
  cfg.loss = "c51";
  cfg.num_bins = 21;
  cfg.v_min = -10;
  cfg.v_max = 10;
  const auto loss = value::make_value_loss(cfg);
  constexpr float kOff = -1e4f;  // logits that give an atom no mass
  auto logits = torch::full({2, 2, 21}, kOff);
  logits[0][0][14] = 0;                        // action 0: value 4
  logits[0][1][13] = 0, logits[0][1][17] = 0;  // action 1: values 3 and 7, mean 5: chosen
  logits[1][0][14] = 0;
  logits[1][1][12] = 0;  // row 1: action 0 (value 4) beats action 1 (value 2)
  const auto t =
      rl::bellman_target(*loss, logits, {}, tensor({1.0f, -2.0f}), tensor({0.5f, 0.25f}), true);
  // Row 0: atoms 3 and 7 move to 1 + 0.5 * 3 = 2.5 and 1 + 0.5 * 7 = 4.5, each split evenly
  // between its two neighbours; the scalar target is 1 + 0.5 * 5 = 3.5.
  // Row 1: atom 4 moves to -2 + 0.25 * 4 = -1, an atom itself.
  EXPECT_FLOAT_EQ(t.scalar[0].item<float>(), 3.5f);
  EXPECT_FLOAT_EQ(t.scalar[1].item<float>(), -1.0f);
  auto want = torch::zeros({2, 21});
  want[0][12] = 0.25, want[0][13] = 0.25, want[0][14] = 0.25, want[0][15] = 0.25;
  want[1][9] = 1.0;
  EXPECT_TRUE(torch::allclose(t.distribution, want, 1e-5, 1e-6)) << t.distribution;
}

}  // namespace
}  // namespace stoch
