// Divergence: the loss-spike guard (train.skip_update_z) skips an update whose gradient norm or
// loss stands far above the recent steps, so an injected gradient spike that wrecks an
// unguarded run leaves a guarded one on course; and train.on_nonfinite: rollback restores the
// newest checkpoint with a lower learning rate when an injected learning-rate spike makes the
// loss non-finite.
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "data_parallel_test.h"
#include "test_util.h"
#include "train/update_guard.h"

namespace stoch {
namespace {

TEST(UpdateGuard, SkipsOutliersAndNonFiniteValuesOnlyOnceItHasSeenEnough) {
  train::UpdateGuard guard(4.0, /*window=*/32, /*min_count=*/8);
  std::string why;
  // Before eight steps nothing is judged, however far off.
  for (int i = 0; i < 8; ++i)
    EXPECT_FALSE(guard.skip(2.0 + 0.01 * (i % 3), 1.0 + 0.1 * (i % 2), &why));
  EXPECT_TRUE(guard.skip(2.0, 50.0, &why));
  EXPECT_NE(why.find("gradient norm 50"), std::string::npos) << why;
  EXPECT_TRUE(guard.skip(9.0, 1.0, &why));
  EXPECT_NE(why.find("loss 9"), std::string::npos) << why;
  EXPECT_TRUE(guard.skip(std::nan(""), 1.0, &why));
  EXPECT_TRUE(guard.skip(2.0, INFINITY, &why));
  EXPECT_FALSE(guard.skip(2.01, 1.05, &why));  // ordinary values still pass

  // Skipped values stayed out of the window: a copy from the state judges alike.
  train::UpdateGuard copy(4.0, 32, 8);
  copy.load(guard.state());
  EXPECT_EQ(copy.state(), guard.state());
  EXPECT_EQ(guard.state()["losses"].size(), 9u);
  EXPECT_THROW(copy.load(nlohmann::json{{"losses", {1.0}}}), InputError);
}

TEST(UpdateGuard, AGradientSpikeWrecksAnUnguardedRunButNotAGuardedOne) {
  const std::string dir = test::temp_dir("guard");
  const std::string cfg = dir + "/tiny.yaml";
  test::write_text(cfg, test::tiny_lm_config(40));
  // No clipping, and a rate still high at the spike: AdamW's second moment takes the spike and
  // all but stops learning for the rest of the run.
  const std::string common =
      " --set train.grad_clip=0 --set model.dropout=0 --set schedule.decay_steps=40";
  const auto val_loss = [&](const std::string& run) {
    return test::metric_by_step(dir + "/" + run, "eval", "val/loss").at(40);
  };
  auto r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/clean" + common);
  ASSERT_EQ(r.code, 0) << r.output;

  const std::string spike = " --set train.fault_grad_spike_step=20";
  r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/wrecked" + common + spike);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(val_loss("wrecked"), val_loss("clean") + 0.15)
      << "the injected spike did little harm, so the test shows nothing";

  r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/guarded" + common + spike +
                      " --set train.skip_update_z=6");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("step 20: update skipped (gradient norm"), std::string::npos) << r.output;
  const auto skipped = test::metric_by_step(dir + "/guarded", "train", "skipped");
  double total = 0;
  for (const auto& [step, n] : skipped) total += n;
  EXPECT_EQ(total, 1.0);
  EXPECT_EQ(skipped.at(20), 1.0);
  EXPECT_NEAR(val_loss("guarded"), val_loss("clean"), 0.05);
}

TEST(Divergence, ANonFiniteLossRollsBackToTheLastCheckpointWithALowerRate) {
  const std::string dir = test::temp_dir("rollback");
  const std::string cfg = dir + "/tiny.yaml";
  test::write_text(cfg, test::tiny_lm_config(40));
  // The rate still decays at step 30, so that halving it shows.
  const std::string spike = " --set schedule.decay_steps=40 --set train.fault_lr_spike_step=22";

  // Stopping, the default: exit 1 at the first non-finite loss, checked every step before its
  // update, so no checkpoint after it is written (the spike's own step still holds the blown-up
  // weights; only a rollback steps over it).
  auto r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/stop" + spike +
                           " --set train.ckpt_every=1 --set train.keep_last=0");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("step 23: loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("; stopping before its update, with the checkpoints written so far "
                          "(lower optim.lr, or set train.on_nonfinite: rollback)"),
            std::string::npos)
      << r.output;
  EXPECT_TRUE(test::fs::exists(test::checkpoint_dir(dir + "/stop", 22)));
  EXPECT_FALSE(test::fs::exists(test::checkpoint_dir(dir + "/stop", 23)));

  const std::string run = dir + "/rollback";
  r = test::run_stoch("train " + cfg + " --run-dir " + run + spike +
                      " --set train.on_nonfinite=rollback");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rolling back to the newest complete checkpoint before step 22 with the "
                          "learning rate times 0.5 (rollback 1 of 3)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("resumed from " + test::checkpoint_dir(run, 20)), std::string::npos)
      << r.output;
  const auto losses = test::train_losses(run);  // fails on a step logged twice
  ASSERT_EQ(losses.size(), 40u);
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << "step " << step;
  // Up to the checkpoint it went back to, the run is the clean one; after it, the same
  // schedule at half the rate.
  r = test::run_stoch("train " + cfg + " --run-dir " + dir +
                      "/clean --set schedule.decay_steps=40");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto clean = test::train_losses(dir + "/clean");
  for (int64_t step = 1; step <= 20; ++step) EXPECT_EQ(losses.at(step), clean.at(step));
  const auto lr = test::metric_by_step(run, "train", "lr");
  const auto clean_lr = test::metric_by_step(dir + "/clean", "train", "lr");
  EXPECT_DOUBLE_EQ(lr.at(20), clean_lr.at(20));
  EXPECT_NEAR(lr.at(30), 0.5 * clean_lr.at(30), 1e-12);
  const auto record = nlohmann::json::parse(test::read_text(run + "/rollbacks.json"));
  EXPECT_EQ(record["count"], 1);
  EXPECT_DOUBLE_EQ(record["lr_scale"].get<double>(), 0.5);

  // With no rollbacks allowed, the run stops with one line saying so.
  r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/none" + spike +
                      " --set train.on_nonfinite=rollback --set train.max_rollbacks=0");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("no rollbacks left (0 of train.max_rollbacks = 0)"), std::string::npos)
      << r.output;
}

// Infinite gradients under a finite loss: with clipping, the norm stops the step before its
// update; without, the update makes the weights non-finite, and they are never checkpointed.
TEST(Divergence, InfiniteGradientsNeverReachACheckpoint) {
  const std::string dir = test::temp_dir("inf-grad");
  const std::string cfg = dir + "/tiny.yaml";
  test::write_text(cfg, test::tiny_lm_config(20));
  const std::string fault = " --set train.fault_grad_inf_step=5 --set train.ckpt_every=1";
  auto r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/clipped" + fault);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("step 5: loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(", gradient norm inf; stopping before its update"), std::string::npos)
      << r.output;
  EXPECT_TRUE(test::fs::exists(test::checkpoint_dir(dir + "/clipped", 4)));
  EXPECT_FALSE(test::fs::exists(test::checkpoint_dir(dir + "/clipped", 5)));

  r = test::run_stoch("train " + cfg + " --run-dir " + dir + "/unclipped" + fault +
                      " --set train.grad_clip=0");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("step 5: the weights are not finite (a non-finite gradient under a "
                          "finite loss); stopping without writing their checkpoint"),
            std::string::npos)
      << r.output;
  EXPECT_TRUE(test::fs::exists(test::checkpoint_dir(dir + "/unclipped", 4)));
  EXPECT_FALSE(test::fs::exists(test::checkpoint_dir(dir + "/unclipped", 5)));
  // What was kept resumes, and without the fault it finishes.
  r = test::run_stoch("resume " + dir + "/unclipped --set train.fault_grad_inf_step=0");
  EXPECT_EQ(r.code, 0) << r.output;
}

class RanksDiverging : public test::DataParallelTest {
 protected:
  RanksDiverging() : DataParallelTest("rollback2") {}
};

// A spike at a checkpoint's step: that checkpoint holds the broken weights (the loss goes
// non-finite one step later), so the rollback goes back to the one before it instead of
// restoring it again until no rollbacks are left.
TEST(Divergence, ARollbackSkipsTheCheckpointThatHoldsTheBrokenUpdate) {
  const std::string dir = test::temp_dir("rollback");
  const std::string cfg = dir + "/tiny.yaml";
  test::write_text(cfg, test::tiny_lm_config(30));
  const std::string run = dir + "/r";
  const auto r = test::run_stoch("train " + cfg + " --run-dir " + run +
                                 " --set train.fault_lr_spike_step=20 --set "
                                 "train.on_nonfinite=rollback");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + test::checkpoint_dir(run, 15)), std::string::npos)
      << r.output;
  EXPECT_EQ(nlohmann::json::parse(test::read_text(run + "/rollbacks.json"))["count"], 1);
  const auto losses = test::train_losses(run);
  ASSERT_EQ(losses.size(), 30u);
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << "step " << step;
}

TEST_F(RanksDiverging, RollBackTogether) {
  const std::string run = dir_ + "/run";
  const auto r = test::run_stoch("train " + cfg_ + " --run-dir " + run +
                                 " --nproc 2 --set train.steps=30 --set train.grad_accum=1 --set "
                                 "train.fault_lr_spike_step=12 --set train.on_nonfinite=rollback");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + test::checkpoint_dir(run, 10)), std::string::npos)
      << r.output;
  EXPECT_EQ(test::train_losses(run).size(), 30u);
}

}  // namespace
}  // namespace stoch
