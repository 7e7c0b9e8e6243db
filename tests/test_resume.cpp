// End-to-end runs of the stoch binary: exact resume, preemption by SIGTERM, death by SIGKILL.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace stoch {
namespace {

using test::fs::exists;

// step -> loss of every train line; fails the test on duplicates.
std::map<int64_t, double> train_losses(const std::string& run_dir) {
  std::map<int64_t, double> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] != "train") continue;
    const int64_t step = j["step"];
    EXPECT_FALSE(out.count(step)) << "step " << step << " logged twice in " << run_dir;
    out[step] = j["loss"].get<double>();
  }
  return out;
}

std::map<int64_t, double> eval_losses(const std::string& run_dir) {
  std::map<int64_t, double> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] == "eval") out[j["step"]] = j["val/loss"].get<double>();
  }
  return out;
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("resume");
    cfg_ = dir_ + "/tiny.yaml";
    // The config pins schedule.decay_steps, so a shorter first leg sees the same learning rates.
    test::write_text(cfg_, test::tiny_lm_config(20));
  }
  std::string dir_, cfg_;
};

TEST_F(Resume, HalfThenResumeIsBitExact) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/straight").code, 0);
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/split --set train.steps=10");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("resume " + dir_ + "/split --set train.steps=20");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;

  const auto a = train_losses(dir_ + "/straight"), b = train_losses(dir_ + "/split");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;  // bit for bit
  EXPECT_EQ(eval_losses(dir_ + "/straight"), eval_losses(dir_ + "/split"));
}

TEST_F(Resume, TrainRefusesARunDirWithCheckpoints) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r --set train.steps=5").code, 0);
  const auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("stoch resume"), std::string::npos) << r.output;
}

TEST_F(Resume, OnlyKeysThatCannotChangeThePastMayBeOverridden) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r --set train.steps=5").code, 0);
  const auto r = test::run_stoch("resume " + dir_ + "/r --set optim.lr=0.5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("optim.lr cannot change on resume"), std::string::npos) << r.output;
}

TEST_F(Resume, SigtermCheckpointsTheCurrentStepAndExits143) {
  const std::string run = dir_ + "/term";
  const pid_t pid = test::spawn_stoch({"train", cfg_, "--run-dir", run, "--set", "train.steps=1000000",
                                       "--set", "train.ckpt_every=0", "--set", "train.eval_every=0"},
                                      dir_ + "/term.log");
  ASSERT_TRUE(test::wait_for([&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 5; }, 60));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_exit(pid), 143) << test::read_text(dir_ + "/term.log");
  const auto losses = train_losses(run);
  ASSERT_FALSE(losses.empty());
  const int64_t last = losses.rbegin()->first;
  const std::string expected = run + "/checkpoints/step-" + std::string(8 - std::to_string(last).size(), '0') +
                               std::to_string(last);
  EXPECT_TRUE(exists(expected + "/manifest.json")) << "no checkpoint of step " << last;
}

TEST_F(Resume, SigkillAtARandomMomentResumesFromTheLastCompleteCheckpoint) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/straight").code, 0);
  const auto reference = train_losses(dir_ + "/straight");
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 3; ++trial) {
    const std::string run = dir_ + "/kill" + std::to_string(trial);
    const pid_t pid = test::spawn_stoch({"train", cfg_, "--run-dir", run, "--set", "train.ckpt_every=1",
                                         "--set", "train.keep_last=2"},
                                        dir_ + "/kill.log");
    // Die somewhere between the first metrics line and the end of the run.
    ASSERT_TRUE(test::wait_for([&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 1; }, 60));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300000));
    ::kill(pid, SIGKILL);
    test::wait_exit(pid);
    const auto r = test::run_stoch("resume " + run);
    ASSERT_EQ(r.code, 0) << r.output;
    const auto resumed = train_losses(run);
    ASSERT_EQ(resumed.size(), reference.size()) << r.output;
    for (const auto& [step, loss] : reference) EXPECT_EQ(loss, resumed.at(step)) << "trial " << trial << " step " << step;
  }
}

}  // namespace
}  // namespace stoch
