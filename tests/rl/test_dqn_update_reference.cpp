// Every DQN update of short CartPole runs recomputed outside stoch:
// tests/rl/dqn_update_reference.py rebuilds each update in float64 PyTorch from the per-step
// checkpoints, by the published definitions (Mnih 2015's n-step target, van Hasselt's double DQN,
// Bellemare's C51 projection, Farebrother's HL-Gauss and two-hot, Schaul's prioritised replay), and
// compares the logged loss, the gradient (AdamW's exp_avg with beta1 = 0), the target network and
// the new priorities. Uniform runs keep replay_capacity = n_step, so each update samples the one
// sampleable transition. A last test lies to the checker about the run, so that it cannot pass
// vacuously.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "test_util.h"

namespace stoch {
namespace {

using Settings = std::map<std::string, std::string>;

std::string script_path() {
  return test::source_path("tests/rl/dqn_update_reference.py");
}

// Why the check cannot run here, or "": asked once, as importing torch takes a second or two.
const std::string& reference_missing() {
  static const std::string why = test::python_missing("torch, numpy, safetensors");
  return why;
}

#define REQUIRE_REFERENCE()                                                        \
  do {                                                                             \
    STOCH_REQUIRE(reference_missing());                                            \
    STOCH_REQUIRE(script_path().empty() ? "STOCH_SOURCE_DIR is not defined" : ""); \
  } while (0)

// configs/rl/cartpole.yaml cut to 40 updates of batch 4, one per environment step, with a
// checkpoint and a loss line at each; 10-step episodes bring truncations into the windows.
// Uniform replay holds exactly one n-step window: every batch row is its one transition. With
// beta1 0 and no clipping, AdamW's exp_avg is the update's gradient.
Settings cartpole(int n_step, const Settings& extra) {
  const std::string n = std::to_string(n_step);
  Settings s = {{"run.device", "cpu"},
                {"run.threads", "1"},
                {"value.num_bins", "21"},
                {"value.v_min", "-2"},
                {"value.v_max", "3"},
                {"dqn.n_step", n},
                {"dqn.replay_capacity", n},
                {"dqn.learning_starts", n},
                {"dqn.train_every", "1"},
                {"dqn.target_update_every", "5"},
                {"env.max_episode_steps", "10"},
                {"train.batch_size", "4"},
                {"optim.beta1", "0"},
                {"train.grad_clip", "0"},
                {"train.steps", "40"},
                {"train.ckpt_every", "1"},
                {"train.keep_last", "0"},
                {"train.eval_every", "0"},
                {"dqn.eval_episodes", "1"},
                {"log.every", "1"},
                {"log.tensorboard", "false"}};
  for (const auto& [key, value] : extra) s[key] = value;
  return s;
}

// Prioritised replay from a 60-transition buffer after 20 steps of exploration.
Settings prioritised(int n_step, Settings extra) {
  const Settings per = {{"dqn.prioritized", "true"},
                        {"dqn.replay_capacity", "60"},
                        {"dqn.learning_starts", "20"},
                        {"dqn.priority_alpha", "0.6"},
                        {"dqn.priority_beta", "0.4"}};
  for (const auto& [key, value] : per) extra.emplace(key, value);  // the case's own keys win
  return cartpole(n_step, extra);
}

// `loss` with double DQN, a learning rate of 0.01 and the target synced every 20 steps: the
// online network's greedy actions part from the target's, so double DQN changes some.
Settings double_dqn(const std::string& loss) {
  return {{"value.loss", loss},
          {"dqn.double_dqn", "true"},
          {"optim.lr", "0.01"},
          {"dqn.target_update_every", "20"}};
}

// Trains `settings` into DIR/run.
void train(const std::string& dir, const Settings& settings) {
  std::string args =
      "train '" + test::source_path("configs/rl/cartpole.yaml") + "' --run-dir '" + dir + "/run'";
  for (const auto& [key, value] : settings) args += " --set '" + key + "=" + value + "'";
  const auto r = test::run_stoch(args);
  ASSERT_EQ(r.code, 0) << r.output;
}

// Runs the checker on DIR/run, telling it that the run was given `settings`.
test::Result check(const std::string& dir, const Settings& settings) {
  test::write_text(dir + "/settings.json", nlohmann::json(settings).dump());
  return test::run_python(script_path(), "'" + dir + "/run' '" + dir + "/settings.json'",
                          "OMP_NUM_THREADS=1");
}

struct Case {
  std::string name;
  Settings settings;
  int checked;  // updates the checker must have compared, at least
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class DqnUpdateReference : public ::testing::TestWithParam<Case> {};

TEST_P(DqnUpdateReference, EveryUpdateMatchesTheDefinitions) {
  REQUIRE_REFERENCE();
  const Case& c = GetParam();
  const std::string dir = test::temp_dir("dqn-update");
  ASSERT_NO_FATAL_FAILURE(train(dir, c.settings));
  const auto r = check(dir, c.settings);
  ASSERT_EQ(r.code, 0) << r.output;
  std::printf("[ %s ] %s", c.name.c_str(), r.output.c_str());
  // "N updates agree": step 1 has no checkpoint before it; prioritised updates that drew a
  // transition twice are skipped.
  const auto at = r.output.find(" updates agree");
  ASSERT_NE(at, std::string::npos) << r.output;
  const auto from = r.output.rfind(' ', at - 1) + 1;
  EXPECT_GE(std::stoi(r.output.substr(from, at - from)), c.checked) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    CartPole, DqnUpdateReference,
    ::testing::Values(
        Case{"hl_gauss_n_step_2", cartpole(2, {{"value.loss", "hl_gauss"}}), 39},
        Case{"huber", cartpole(1, {{"value.loss", "huber"}}), 39},
        Case{"prioritised_two_hot_double_n_step_2", prioritised(2, double_dqn("two_hot")), 25},
        Case{"prioritised_c51_n_step_3", prioritised(3, {{"value.loss", "c51"}}), 25}),
    [](const auto& info) { return info.param.name; });

// c51 with double DQN and 3-step returns passes; the same run checked as plain DQN (the target
// network's greedy action) fails at a step, so the check does not pass vacuously.
TEST(DqnUpdateReferenceCheck, C51DoubleNStep3PassesAndFailsAsPlainDqn) {
  REQUIRE_REFERENCE();
  const std::string dir = test::temp_dir("dqn-update-double");
  Settings settings = cartpole(3, double_dqn("c51"));
  ASSERT_NO_FATAL_FAILURE(train(dir, settings));
  auto r = check(dir, settings);
  ASSERT_EQ(r.code, 0) << r.output;
  std::printf("[ c51_double_n_step_3 ] %s", r.output.c_str());
  EXPECT_NE(r.output.find("39 updates agree"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("double DQN changed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("double DQN changed 0 of"), std::string::npos)
      << "no bootstrap action changed: checking as plain DQN would pass as well\n"
      << r.output;
  settings["dqn.double_dqn"] = "false";
  r = check(dir, settings);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("MISMATCH step "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stoch
