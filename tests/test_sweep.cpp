#include <gtest/gtest.h>

#include "cli/sweep_command.h"
#include "core/errors.h"
#include "test_util.h"

namespace stoch {
namespace {

using test::train_losses;

TEST(Sweep, ExpandsTheGridTimesSeeds) {
  cli::SweepArgs a;
  a.grid = {"optim.lr=0.1,0.2", "model.n_layer=1,2"};
  a.seeds = 2;
  const auto runs = cli::expand_sweep(a);
  ASSERT_EQ(runs.size(), 8u);
  EXPECT_EQ(runs[0].name, "optim.lr=0.1,model.n_layer=1,seed=1");
  EXPECT_EQ(runs[0].sets,
            (std::vector<std::string>{"optim.lr=0.1", "model.n_layer=1", "run.seed=1"}));
  EXPECT_EQ(runs[7].name, "optim.lr=0.2,model.n_layer=2,seed=2");
  a.grid = {"optim.lr"};
  try {
    cli::expand_sweep(a);
    ADD_FAILURE() << "a grid entry without '=' was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--grid optim.lr: expected KEY=VALUE", 0), 0u)
        << e.what();
  }
  a.grid = {"optim.lr=0.1,,0.2"};
  EXPECT_THROW(cli::expand_sweep(a), InputError);
}

TEST(Sweep, SkipsFinishedRunsAndResumesInterruptedOnes) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const std::string cmd =
      "sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --seeds 2 --jobs 2 --out " + dir + "/sw";
  auto r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string one = dir + "/sw/optim.lr=0.01,seed=1";
  for (const char* name : {"optim.lr=0.01,seed=1", "optim.lr=0.01,seed=2", "optim.lr=0.02,seed=1",
                           "optim.lr=0.02,seed=2"})
    EXPECT_TRUE(test::fs::exists(dir + "/sw/" + name + "/checkpoints/step-00000010/manifest.json"))
        << name;
  const auto before = train_losses(one);
  ASSERT_EQ(before.size(), 10u);
  const std::string metrics = test::read_text(one + "/metrics.jsonl");

  // Everything finished: a second call does nothing.
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("4 runs in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 to do"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(one + "/metrics.jsonl"), metrics);

  // Lose the final checkpoint: the run counts as interrupted and is resumed to the same end.
  test::fs::remove_all(one + "/checkpoints/step-00000010");
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 to do"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resuming optim.lr=0.01,seed=1"), std::string::npos) << r.output;
  EXPECT_EQ(train_losses(one), before);  // resumed bit for bit
}

// The sweep shares the cores among its jobs unless run.threads is given, which then wins.
TEST(Sweep, RunThreadsGivenWithSetWins) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(2));
  const auto r = test::run_stoch(
      "sweep " + dir + "/c.yaml --seeds 1 --jobs 1 --set run.threads=3 " + "--out " + dir + "/sw");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("run.threads as set"), std::string::npos) << r.output;
  const std::string config = test::read_text(dir + "/sw/seed=1/config.yaml");
  EXPECT_NE(config.find("\n  threads: 3 "), std::string::npos) << config;
}

TEST(Sweep, BadGridValueFailsBeforeAnyRun) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  const auto r =
      test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lr=0.01,fast --out " + dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--grid optim.lr: optim.lr: expected a number"), std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
}

TEST(Sweep, ErrorsNameTheOptionThatGaveTheKey) {
  const std::string dir = test::temp_dir("sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(10));
  auto r = test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lrr=0.01 --out " + dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--grid optim.lrr: unknown key optim.lrr (did you mean optim.lr?)"),
            std::string::npos)
      << r.output;
  r = test::run_stoch("sweep " + dir + "/c.yaml --set train.stepz=3 --grid optim.lr=0.01 --out " +
                      dir + "/sw");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--set train.stepz: unknown key"), std::string::npos) << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/sw"));
}

}  // namespace
}  // namespace stoch
