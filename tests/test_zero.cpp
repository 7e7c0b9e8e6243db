// Sharded optimiser state (ZeRO-1) and sharded gradients (ZeRO-2): W ranks train as one process
// does, each holding 1/W of AdamW's state; checkpoints are written as one shard per rank, and a
// resume on another number of ranks (and another sharding) reshards them and goes on with the
// same losses and the same data, no micro-batch seen twice or skipped.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

#include "core/errors.h"
#include "core/strings.h"
#include "data_parallel_test.h"
#include "test_util.h"
#include "train/distributed.h"

namespace stoch {
namespace {

using test::expect_close;

class Sharding : public test::DataParallelTest {
 protected:
  Sharding() : DataParallelTest("zero") {}

  // Six micro-batches per step in every run; dropout off (ranks draw their own masks) and a
  // clipping threshold that every step reaches, so the global norm matters.
  std::string train(const std::string& run, int64_t ranks, const std::string& shard,
                    const std::string& extra = "") {
    return "train " + cfg_ + " --run-dir " + dir_ + "/" + run +
           " --set model.dropout=0 --set train.grad_clip=0.05 --set train.grad_accum=" +
           std::to_string(6 / ranks) + (ranks > 1 ? " --nproc " + std::to_string(ranks) : "") +
           " --set dist.shard=" + shard + extra;
  }
};

// "optimizer state: X MB on this rank, 1/W of Y MB" -> {X, Y}.
std::pair<double, double> state_mb(const std::string& log) {
  std::smatch m;
  static const std::regex re(
      "optimizer state: ([0-9.e+-]+) MB on this rank, 1/[0-9]+ of ([0-9.e+-]+) MB");
  if (!std::regex_search(log, m, re)) return {0, 0};
  return {std::stod(m[1]), std::stod(m[2])};
}

TEST_F(Sharding, ShardedRanksTrainLikeOneProcessWithAboutOneWthOfTheState) {
  auto r = test::run_stoch(train("one", 1, "none"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto one = test::train_losses(dir_ + "/one");
  const auto grad_norm = test::metric_by_step(dir_ + "/one", "train", "grad_norm");
  ASSERT_GT(grad_norm.begin()->second, 0.05) << "clipping was not exercised";
  for (const int64_t w : {2, 3}) {
    for (const std::string shard : {"optimizer", "gradients"}) {
      const std::string run = shard + std::to_string(w);
      r = test::run_stoch(train(run, w, shard));
      ASSERT_EQ(r.code, 0) << r.output;
      expect_close(one, test::train_losses(dir_ + "/" + run), run);
      expect_close(grad_norm, test::metric_by_step(dir_ + "/" + run, "train", "grad_norm"),
                   run + " grad_norm");
      expect_close(test::metric_by_step(dir_ + "/one", "eval", "val/loss"),
                   test::metric_by_step(dir_ + "/" + run, "eval", "val/loss"), run + " eval");
      const auto [mine, whole] = state_mb(r.output);
      ASSERT_GT(whole, 0) << r.output;
      // 1/W of the elements, up to the padding to a multiple of W and per-piece step counts.
      EXPECT_NEAR(mine * static_cast<double>(w), whole, 0.02 * whole) << r.output;
      for (int64_t k = 0; k < w; ++k)
        EXPECT_TRUE(test::fs::exists(test::checkpoint_dir(dir_ + "/" + run, 20) +
                                     "/optimizer.shard-" + std::to_string(k) + ".safetensors"))
            << run;
      EXPECT_FALSE(
          test::fs::exists(test::checkpoint_dir(dir_ + "/" + run, 20) + "/optimizer.safetensors"));
    }
  }
}

TEST_F(Sharding, ElasticResumeReshardsAndKeepsTheDataExact) {
  auto r = test::run_stoch(train("straight", 1, "none", " --set train.steps=30"));
  ASSERT_EQ(r.code, 0) << r.output;
  // Two ranks sharding the optimiser, then three sharding gradients, then one process.
  const std::string run = dir_ + "/elastic", trace = dir_ + "/trace.txt";
  ::setenv("STOCH_TRACE_MICRO_BATCHES", trace.c_str(), 1);
  r = test::run_stoch(train("elastic", 2, "optimizer", " --set train.steps=10"));
  EXPECT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("resume " + run +
                      " --nproc 3 --set dist.shard=gradients --set train.steps=20");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("world size 2 -> 3: grad_accum 3 -> 2"), std::string::npos) << r.output;
  r = test::run_stoch("resume " + run + " --set dist.shard=none --set train.steps=25");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("world size 3 -> 1: grad_accum 2 -> 6"), std::string::npos) << r.output;
  // Again on one process: its checkpoint's six micro-batches per step stand, not the config's 3.
  r = test::run_stoch("resume " + run + " --set train.steps=30");
  EXPECT_EQ(r.code, 0) << r.output;
  ::unsetenv("STOCH_TRACE_MICRO_BATCHES");

  expect_close(test::train_losses(dir_ + "/straight"), test::train_losses(run), "losses");
  expect_close(test::metric_by_step(dir_ + "/straight", "eval", "val/loss"),
               test::metric_by_step(run, "eval", "val/loss"), "eval");
  // Every micro-batch of the 30 steps exactly once, each in its step.
  std::multiset<int64_t> seen;
  std::ifstream in(trace);
  int64_t step = -1;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    int64_t rank = 0, micro = 0;
    std::string a, b, c;
    l >> a >> rank >> b >> step >> c;
    ASSERT_EQ(c, "micro") << line;
    while (l >> micro) {
      EXPECT_EQ(micro / 6, step) << line;
      seen.insert(micro);
    }
  }
  ASSERT_EQ(seen.size(), 180u);
  int64_t expect = 0;
  for (const int64_t m : seen) EXPECT_EQ(m, expect++);
}

// A task whose targets change with the step (value_regression's phases) keeps them on the step
// across a resume on another number of ranks: it counted the config's micro-batches per step, so
// phase 2 came four steps early (shrinking) or phase 1 six steps late (growing).
TEST_F(Sharding, ElasticResumeKeepsAValueTasksPhasesOnTheirSteps) {
  const std::string cfg = dir_ + "/vr.yaml";
  test::write_text(cfg,
                   "task: value_regression\nrun: {threads: 1}\nmodel: {torso: mlp, hidden: [16]}\n"
                   "data: {kind: nonstationary, num_inputs: 256, input_shape: [4], offsets: [0, 8, "
                   "16], steps_per_phase: 6}\nvalue: {loss: mse}\noptim: {lr: 0.01, "
                   "weight_decay: 0}\nschedule: {kind: constant, warmup_steps: 0}\ntrain: {steps: "
                   "16, batch_size: 16, grad_accum: 2, grad_clip: 0, eval_every: 4, ckpt_every: "
                   "8}\nlog: {every: 1, console_every: 100}\n");
  auto r = test::run_stoch("train " + cfg + " --run-dir " + dir_ + "/vr-one");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto one = test::train_losses(dir_ + "/vr-one");
  // Two ranks of one micro-batch each, then one process (which takes two per step).
  r = test::run_stoch("train " + cfg + " --run-dir " + dir_ +
                      "/vr-shrink --nproc 2 --set train.grad_accum=1 --set train.steps=8");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("resume " + dir_ + "/vr-shrink --set train.steps=16");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("world size 2 -> 1: grad_accum 1 -> 2"), std::string::npos) << r.output;
  expect_close(one, test::train_losses(dir_ + "/vr-shrink"), "2 ranks -> 1");
  // One process (two micro-batches per step), then two ranks of one.
  r = test::run_stoch("train " + cfg + " --run-dir " + dir_ + "/vr-grow --set train.steps=4");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("resume " + dir_ + "/vr-grow --nproc 2 --set train.steps=16");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_close(one, test::train_losses(dir_ + "/vr-grow"), "1 -> 2 ranks");
}

// A checkpoint inside a logging interval holds the losses summed so far over its ranks; a resume
// on another number of ranks logs that interval's mean as the uninterrupted run does.
TEST_F(Sharding, AnIntervalSplitByAnElasticResumeLogsItsMean) {
  const std::string run = dir_ + "/split";
  auto r =
      test::run_stoch(train("split", 2, "optimizer",
                            " --set train.steps=10 --set train.ckpt_every=5 --set log.every=10"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto whole = test::train_losses(run);
  ASSERT_EQ(whole.size(), 1u);  // step 10 only
  // As if stopped after step 5's checkpoint, then resumed on one process and on three.
  for (const int64_t ranks : {1, 3}) {
    test::fs::remove_all(test::checkpoint_dir(run, 10));
    r = test::run_stoch("resume " + run + (ranks > 1 ? " --nproc " + std::to_string(ranks) : ""));
    ASSERT_EQ(r.code, 0) << r.output;
    expect_close(whole, test::train_losses(run), "resumed on " + std::to_string(ranks));
  }
}

// Sharded gradients are a share on each rank, outside the parameters: the norms hook's per-group
// gradient norms are gathered from the shares and equal those of whole gradients (they went
// missing, with a warning, before).
TEST_F(Sharding, TheNormsHookMeasuresShardedGradients) {
  const std::string hook = " --set train.steps=10 --set 'hooks=[{name: norms, every: 5}]'";
  // "diag/grad_norm/<group>@<step>" -> value, from a run's diag lines.
  const auto grad_norms = [](const std::string& run) {
    std::map<std::string, double> out;
    for (const auto& line : stoch::split(test::read_text(run + "/metrics.jsonl"), '\n')) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line);
      if (j["split"] != "diag") continue;
      for (const auto& [key, value] : j.items())
        if (key.rfind("diag/grad_norm/", 0) == 0)
          out[key + "@" + std::to_string(j["step"].get<int64_t>())] = value.get<double>();
    }
    return out;
  };
  for (const std::string shard : {"none", "gradients"}) {
    const auto r = test::run_stoch(train("norms-" + shard, 2, shard, hook));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(r.output.find("hook norms: no gradients"), std::string::npos) << r.output;
  }
  const auto whole = grad_norms(dir_ + "/norms-none");
  const auto sharded = grad_norms(dir_ + "/norms-gradients");
  ASSERT_GE(whole.size(), 4u);  // two steps, several layer groups
  ASSERT_EQ(whole.size(), sharded.size());
  for (const auto& [key, v] : whole) {
    ASSERT_TRUE(sharded.count(key)) << key;
    EXPECT_GT(v, 0) << key;
    EXPECT_NEAR(sharded.at(key), v, 1e-5 * v) << key;
  }
}

TEST_F(Sharding, AMissingShardIsNamedAndRefused) {
  const std::string run = dir_ + "/missing";
  auto r = test::run_stoch(train("missing", 2, "optimizer", " --set train.steps=10"));
  ASSERT_EQ(r.code, 0) << r.output;
  // A consistent manifest without the second shard: state.json's layout still asks for it.
  const std::string ckpt = test::checkpoint_dir(run, 10);
  auto manifest = nlohmann::json::parse(test::read_text(ckpt + "/manifest.json"));
  manifest["files"].erase("optimizer.shard-1.safetensors");
  test::write_text(ckpt + "/manifest.json", manifest.dump(2));
  test::fs::remove(ckpt + "/optimizer.shard-1.safetensors");
  r = test::run_stoch("resume " + run + " --nproc 2 --set train.steps=12");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(ckpt + "/optimizer.shard-1.safetensors: missing"), std::string::npos)
      << r.output;
  EXPECT_EQ(test::train_losses(run).size(), 10u);
}

}  // namespace
}  // namespace stoch
