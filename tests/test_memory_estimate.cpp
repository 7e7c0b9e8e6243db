// A run that cannot fit in memory is refused before anything is allocated or written, with the
// estimate; the estimate's parts follow the config.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>

#include "core/errors.h"
#include "test_util.h"
#include "train/memory_estimate.h"

namespace stoch {
namespace {

TEST(MemoryEstimate, AvailableMemoryIsRead) {
  // Linux always has /proc/meminfo; a few MB at least are free while the tests run.
  EXPECT_GT(train::available_memory_bytes(), 1e6);
}

TEST(MemoryEstimate, ARunThatCannotFitExitsTwoAtOnceWithTheEstimate) {
  const std::string dir = test::temp_dir("memory");
  const auto t0 = std::chrono::steady_clock::now();
  const auto refused =
      test::run_stoch("train " + test::source_path("configs/quickstart.yaml") + " --run-dir " +
                      dir + "/run --set train.batch_size=100000000");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("the run needs at least "), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("activations"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("is available; lower train.batch_size"), std::string::npos)
      << refused.output;
  EXPECT_LT(took, 60) << "the refusal should come before any work";
  EXPECT_FALSE(test::fs::exists(dir + "/run")) << "a refused run left its folder";

  // A replay buffer too large (CartPole: 2 x 4 floats + 9 bytes a transition, 4 TB here) is
  // refused the same way, and so is a value-regression input set too large.
  for (const auto& [config, set, part] :
       {std::tuple<std::string, std::string, std::string>{
            "configs/rl/cartpole_mse.yaml", "dqn.replay_capacity=100000000000", "replay buffer"},
        {"configs/value/nonstationary.yaml", "data.num_inputs=100000000000",
         "data (inputs and targets)"}}) {
    const auto r = test::run_stoch("train " + test::source_path(config) + " --run-dir " + dir +
                                   "/rl --set " + set);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("the run needs at least "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << r.output;
    EXPECT_FALSE(test::fs::exists(dir + "/rl")) << "a refused run left its folder";
  }

  // The same config with a batch that fits trains.
  const auto ok = test::run_stoch("train " + test::source_path("configs/quickstart.yaml") +
                                  " --run-dir " + dir + "/small --set train.steps=2");
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_NE(ok.output.find("memory: at least "), std::string::npos) << ok.output;
}

TEST(MemoryEstimate, PartsAddUpAndShardingDividesTheOptimizerState) {
  train::MemoryEstimate whole, sharded;
  train::add_training_state(whole, 1e6, 1.0);
  train::add_training_state(sharded, 1e6, 0.25);
  EXPECT_DOUBLE_EQ(whole.total(), 16e6);  // weights, gradients, two moments: 4 bytes each
  EXPECT_DOUBLE_EQ(sharded.total(), 8e6 + 2e6);
  EXPECT_NE(whole.describe().find("optimizer state 8 MB"), std::string::npos) << whole.describe();
  EXPECT_THROW(train::check_memory_fits(whole, int64_t{1} << 40, c10::Device(c10::kCPU)),
               InputError);
  EXPECT_NO_THROW(train::check_memory_fits(whole, 1, c10::Device(c10::kCPU)));
}

}  // namespace
}  // namespace stoch
