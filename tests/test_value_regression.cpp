#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config_tree.h"
#include "models/value_net.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/value_regression_task.h"

namespace stoch {
namespace {

std::string tiny_value_config(const std::string& loss) {
  return "task: value_regression\n"
         "run: {seed: 1, threads: 1}\n"
         "model: {torso: mlp, hidden: [64, 64]}\n"
         "data: {num_inputs: 64, input_shape: [4], offsets: [0, 3], steps_per_phase: 150, "
         "frequency: 3.0}\n"
         "value: {loss: " +
         loss +
         ", num_bins: 41, v_min: -5, v_max: 5}\n"
         "optim: {lr: 0.003, weight_decay: 0}\n"
         "schedule: {kind: constant, warmup_steps: 0}\n"
         "train: {steps: 300, batch_size: 32, grad_clip: 0, eval_every: 50, ckpt_every: 0}\n"
         "log: {every: 10}\n";
}

// (step, fit/mse, phase) of every eval line.
std::vector<std::tuple<int64_t, double, int>> fits(const std::string& run) {
  const auto mse = test::metric_by_step(run, "eval", "fit/mse");
  const auto phase = test::metric_by_step(run, "eval", "phase");
  std::vector<std::tuple<int64_t, double, int>> out;
  for (const auto& [step, v] : mse) out.emplace_back(step, v, static_cast<int>(phase.at(step)));
  return out;
}

class ValueRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(ValueRegression, FitsEachPhaseAndMovesToTheNext) {
  const std::string dir = test::temp_dir("vr");
  test::write_text(dir + "/c.yaml", tiny_value_config(GetParam()));
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto f = fits(dir + "/run");
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(std::get<2>(f[0]), 0);
  EXPECT_EQ(std::get<2>(f[2]), 0);  // step 150: still the first phase
  EXPECT_EQ(std::get<2>(f[3]), 1);
  // Within each phase the fit improves; the targets' variance is about 0.5.
  EXPECT_LT(std::get<1>(f[2]), std::get<1>(f[0]));
  EXPECT_LT(std::get<1>(f[5]), std::get<1>(f[3]));
  EXPECT_LT(std::get<1>(f[5]), 0.3);
  EXPECT_NE(test::read_text(dir + "/run/metrics.jsonl").find("samples_per_s"), std::string::npos);
  // TensorBoard scalars are written beside the JSONL.
  bool has_events = false;
  for (const auto& e : test::fs::directory_iterator(dir + "/run/tb"))
    has_events = has_events || e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_TRUE(has_events);
  ASSERT_NO_FATAL_FAILURE(test::expect_eval_reprints_log(dir + "/run", 300));
}

INSTANTIATE_TEST_SUITE_P(Losses, ValueRegression, ::testing::Values("mse", "two_hot", "hl_gauss"));

// value.support auto: targets sin(.) + b with noise U(0, 0.5) stay in [min b - 1, max b + 1.5].
TEST(ValueRegressionSupport, AutoIsTheTargetsRange) {
  const std::string dir = test::temp_dir("vr");
  std::string cfg = tiny_value_config("hl_gauss");
  cfg.replace(cfg.find("v_max: 5"), 8, "v_max: 5, support: auto");
  cfg.replace(cfg.find("frequency: 3.0"), 14, "frequency: 3.0, noise: 0.5");
  test::write_text(dir + "/c.yaml", cfg);
  const auto r =
      test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run --set train.steps=50");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("value.support auto:"), std::string::npos) << r.output;
  EXPECT_EQ(test::metric_by_step(dir + "/run", "eval", "value/support_lo").at(50), -1.0);
  EXPECT_EQ(test::metric_by_step(dir + "/run", "eval", "value/support_hi").at(50), 4.5);
}

// value.support running: the bins follow the targets into the second phase (b = 3), from an
// initial support that misses it, within the targets' range; and a run resumed at step 200
// moves them as the straight one.
TEST(ValueRegressionSupport, RunningFollowsThePhasesAndResumesExactly) {
  const std::string dir = test::temp_dir("vr");
  std::string cfg = tiny_value_config("two_hot");
  cfg.replace(cfg.find("v_min: -5, v_max: 5"), 19,
              "v_min: -2, v_max: 2, support: running, support_rate: 0.05");
  cfg.replace(cfg.find("ckpt_every: 0"), 13, "ckpt_every: 100");
  test::write_text(dir + "/c.yaml", cfg);
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(dir + "/c.yaml", dir, 200, 300));
  const auto lo = test::metric_by_step(dir + "/straight", "eval", "value/support_lo");
  const auto hi = test::metric_by_step(dir + "/straight", "eval", "value/support_hi");
  ASSERT_EQ(lo.size(), 6u);
  // Mean +- 3 std of the targets, kept within their range [-1, 4]. Phase 0 (b = 0, targets
  // sin(.) in [-1, 1], std about 0.7): clipped at -1 below, about 2 above. Phase 1 (b = 3):
  // clipped at 4 above, about 1 below, and past the initial support's end.
  EXPECT_EQ(lo.at(150), -1.0);
  EXPECT_GT(hi.at(150), 1.0);
  EXPECT_LT(hi.at(150), 3.0);
  EXPECT_EQ(hi.at(300), 4.0);
  EXPECT_GT(lo.at(300), 0.5);
  EXPECT_LT(lo.at(300), 2.0);
  for (const std::string m : {"value/support_lo", "value/support_hi", "fit/mse"}) {
    auto split = test::metric_by_step(dir + "/split", "eval", m);
    EXPECT_EQ(test::metric_by_step(dir + "/straight", "eval", m), split) << m;
  }
  EXPECT_EQ(test::train_losses(dir + "/straight"), test::train_losses(dir + "/split"));

  // Micro-batches computed at once by single-threaded workers move the bins as one process does
  // (the workers raced in them: three runs of four workers gave three supports).
  for (const std::string workers : {"1", "4"}) {
    const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/w" + workers +
                                   " --set train.steps=100 --set train.grad_accum=4 " +
                                   "--set train.batch_size=8 --set train.cpu_workers=" + workers);
    ASSERT_EQ(r.code, 0) << r.output;
  }
  for (const std::string m : {"value/support_lo", "value/support_hi"})
    EXPECT_EQ(test::metric_by_step(dir + "/w1", "eval", m),
              test::metric_by_step(dir + "/w4", "eval", m))
        << m;
}

TEST(ValueNet, EveryTorsoMapsItsInputToValues) {
  for (const auto& [torso, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"mlp", {6}}, {"cnn", {2, 5, 5}}, {"transformer", {3, 8}}}) {
    models::ValueNetConfig c;
    c.torso = torso;
    c.hidden = {16};
    c.channels = {4};
    c.d_model = 16;
    c.n_head = 2;
    models::ValueNet net(c, shape, 7);
    std::vector<int64_t> in = {5};
    in.insert(in.end(), shape.begin(), shape.end());
    const auto out = net->forward(torch::randn(in));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 7})) << torso;
  }
}

TEST(ValueNet, TorsoShapeMismatchIsAnInputError) {
  const std::string dir = test::temp_dir("vr");
  test::write_text(dir + "/c.yaml", tiny_value_config("mse") + "");
  test::expect_train_refused(dir, "cnn needs [C, H, W] inputs", " --set model.torso=cnn");
}

}  // namespace
}  // namespace stoch
