// Data-parallel training over Gloo: two ranks with grad_accum 1 train like one process with
// grad_accum 2, resume exactly, refuse a world size the step's micro-batches do not split over,
// stop together on SIGTERM, and run under torchrun as under --nproc.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <torch/torch.h>

#include <map>

#include "core/errors.h"
#include "core/torch/safetensors.h"
#include "data_parallel_test.h"
#include "test_util.h"
#include "train/distributed.h"

namespace stoch {
namespace {

using test::train_losses;

std::map<int64_t, double> eval_losses(const std::string& run_dir) {
  return test::metric_by_step(run_dir, "eval", "val/loss");
}

std::map<std::string, torch::Tensor> model_at(const std::string& run, int64_t step) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : read_safetensors(test::checkpoint_dir(run, step) + "/model.safetensors"))
    out[name] = t;
  return out;
}

using test::expect_close;

class DataParallel : public test::DataParallelTest {
 protected:
  DataParallel() : DataParallelTest("ddp") {}
};

TEST_F(DataParallel, TwoRanksTrainLikeOneProcessWithTwiceTheAccumulation) {
  // Dropout draws per-rank masks, so the comparison with one process needs it off. Small
  // buckets make several all-reduces per step, which must pair up in order across ranks.
  const std::string common = " --set model.dropout=0";
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/one" + common);
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/two --nproc 2" + common +
                      " --set train.grad_accum=1 --set train.allreduce_bucket_mb=0.002");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("data parallel: 2 ranks"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("all-reduced in 1 buckets"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("all-reduced in "), std::string::npos) << r.output;

  const auto one = train_losses(dir_ + "/one"), two = train_losses(dir_ + "/two");
  ASSERT_EQ(one.size(), 20u);
  expect_close(one, two, "train loss");
  expect_close(eval_losses(dir_ + "/one"), eval_losses(dir_ + "/two"), "val/loss");
  // Tokens per step count every rank's.
  const auto rate = test::metric_by_step(dir_ + "/two", "train", "tokens_per_s");
  EXPECT_EQ(rate.size(), 20u);

  const auto a = model_at(dir_ + "/one", 20), b = model_at(dir_ + "/two", 20);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-5, 1e-6))
        << name << ": max difference " << (t - b.at(name)).abs().max().item<double>();
  }
  const auto state = nlohmann::json::parse(
      test::read_text(test::checkpoint_dir(dir_ + "/two", 20) + "/state.json"));
  EXPECT_EQ(state["world_size"], 2);
  EXPECT_EQ(state["micro_batches"], 40);

  // A one-process run continues on two ranks, each with half the accumulation.
  r = test::run_stoch("resume " + dir_ + "/one --nproc 2 --set train.steps=25");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("world size 1 -> 2: grad_accum 2 -> 1"), std::string::npos) << r.output;
  EXPECT_EQ(train_losses(dir_ + "/one").size(), 25u);
}

TEST_F(DataParallel, ResumeOfTwoRanksIsExactAndNeedsTheSameWorldSize) {
  // Dropout on: each rank's own RNG stream must come back from the checkpoint.
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(
      cfg_, dir_, 10, 20, " --nproc 2 --set train.grad_accum=1", " --nproc 2"));

  const auto a = train_losses(dir_ + "/straight"), b = train_losses(dir_ + "/split");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_EQ(eval_losses(dir_ + "/straight"), eval_losses(dir_ + "/split"));

  // Two micro-batches per step do not split over three ranks (one and two ranks: see
  // test_zero.cpp's elastic resume).
  const auto r = test::run_stoch("resume " + dir_ + "/split --set train.steps=30 --nproc 3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("world size 2 with 2 micro-batches per step, which do not split evenly "
                          "over 3 ranks"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(train_losses(dir_ + "/split").size(), 20u);  // nothing was written
}

TEST_F(DataParallel, SigtermStopsEveryRankAfterOneCheckpoint) {
  const std::string run = dir_ + "/term";
  int64_t last = 0;
  ASSERT_NO_FATAL_FAILURE(test::signal_midway(
      SIGTERM, 143,
      {"train", cfg_, "--run-dir", run, "--nproc", "2", "--set", "train.grad_accum=1", "--set",
       "train.steps=1000000", "--set", "train.ckpt_every=0", "--set", "train.eval_every=0"},
      run, dir_ + "/term.log", &last));
  const auto r =
      test::run_stoch("resume " + run + " --nproc 2 --set train.steps=" + std::to_string(last + 2));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(train_losses(run).size(), static_cast<size_t>(last + 2));
}

TEST_F(DataParallel, DqnRefusesSeveralRanks) {
  const auto r = test::run_stoch(std::string("train ") + STOCH_SOURCE_DIR +
                                 "/configs/rl/cartpole.yaml --nproc 2 --run-dir " + dir_ +
                                 "/dqn --set train.steps=2");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("task dqn trains in one process only"), std::string::npos) << r.output;
}

TEST_F(DataParallel, BackendsThatDoNotFitTheDeviceAreRefused) {
  const auto r = test::run_stoch("train " + cfg_ + " --nproc 2 --run-dir " + dir_ +
                                 "/nccl --set dist.backend=nccl --set run.device=cpu");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("dist.backend: nccl runs on CUDA GPUs, but run.device is cpu"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir_ + "/nccl/checkpoints"));
}

TEST_F(DataParallel, TorchrunStartsTheSameRanks) {
  STOCH_REQUIRE(test::python_missing("torch"));
  const std::string torchrun = test::fs::path(test::python_path()).parent_path() / "torchrun";
  STOCH_REQUIRE(test::fs::exists(torchrun) ? "" : torchrun + " not found");
  const std::string args = " train " + cfg_ + " --set train.grad_accum=1 --set train.steps=6";
  auto r = test::run_stoch(args.substr(1) + " --nproc 2 --run-dir " + dir_ + "/nproc");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string cmd = torchrun + " --standalone --no-python --nproc-per-node 2 " +
                          STOCH_BINARY + args + " --run-dir " + dir_ + "/torchrun 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_EQ(train_losses(dir_ + "/nproc"), train_losses(dir_ + "/torchrun")) << out;
}

// torchrun's variables, read in this process.
class WorldEnvTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT"})
      ::unsetenv(v);
  }
};

TEST_F(WorldEnvTest, UnsetMeansOneProcessAndBadValuesNameTheVariable) {
  TearDown();
  EXPECT_EQ(train::read_world_env().world_size, 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  const auto env = train::read_world_env();
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(train::threads_per_rank(6, env), 3);  // six threads shared by two local ranks
  EXPECT_EQ(train::threads_per_rank(1, env), 1);
  ::setenv("RANK", "4", 1);
  try {
    train::read_world_env();
    ADD_FAILURE() << "RANK=4 of WORLD_SIZE=4 was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=4"), std::string::npos) << e.what();
  }
  ::setenv("RANK", "0", 1);
  ::setenv("MASTER_PORT", "http", 1);
  EXPECT_THROW(train::read_world_env(), InputError);
}

}  // namespace
}  // namespace stoch
