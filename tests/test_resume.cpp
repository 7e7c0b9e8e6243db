// End-to-end runs of the stoch binary: exact resume, preemption by SIGTERM, death by SIGKILL.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>

#include "core/metrics.h"
#include "core/torch/checkpoint.h"
#include "core/whole_file.h"
#include "test_util.h"

namespace stoch {
namespace {

using test::fs::exists;

using test::train_losses;

std::map<int64_t, double> eval_losses(const std::string& run_dir) {
  return test::metric_by_step(run_dir, "eval", "val/loss");
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
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(cfg_, dir_, 10, 20));

  const auto a = train_losses(dir_ + "/straight"), b = train_losses(dir_ + "/split");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;  // bit for bit
  EXPECT_EQ(eval_losses(dir_ + "/straight"), eval_losses(dir_ + "/split"));
}

TEST_F(Resume, ParallelMicroBatchWorkersAreExactAndMatchSequential) {
  const std::string w = " --set model.dropout=0 --set train.cpu_workers=2 --set run.threads=2";
  ASSERT_EQ(
      test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/seq --set model.dropout=0").code,
      0);
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/par" + w).code, 0);
  auto r =
      test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/split --set train.steps=10" + w);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_EQ(test::run_stoch("resume " + dir_ + "/split --set train.steps=20").code, 0);
  const auto seq = train_losses(dir_ + "/seq"), par = train_losses(dir_ + "/par"),
             split = train_losses(dir_ + "/split");
  ASSERT_EQ(par.size(), 20u);
  for (const auto& [step, loss] : par) {
    EXPECT_EQ(loss, split.at(step)) << "step " << step;               // exact under resume
    EXPECT_NEAR(loss, seq.at(step), 1e-4 * loss) << "step " << step;  // same maths, other sum order
  }
  r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/bad --set train.cpu_workers=2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("model.dropout = 0"), std::string::npos) << r.output;
}

TEST_F(Resume, TrainRefusesARunDirWithCheckpoints) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r --set train.steps=5").code,
            0);
  const auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("stoch resume"), std::string::npos) << r.output;
}

// torchrun --max-restarts runs the same `train` command again after a failure: with
// TORCHELASTIC_RESTART_COUNT above 0 it continues the run its own job started (it exited 2,
// "already holds checkpoints", on every restart). A run another job left in the folder is still
// refused, and so is a config that differs.
TEST_F(Resume, ATorchrunRestartOfTrainContinuesTheRun) {
  const std::string run = dir_ + "/restarted";
  const std::vector<std::string> args = {
      "train", cfg_, "--run-dir", run, "--set", "train.steps=400", "--set", "train.eval_every=0"};
  int64_t last = 0;
  ::setenv("TORCHELASTIC_RUN_ID", "job-1", 1);  // what torchrun gives its workers
  test::signal_midway(SIGTERM, 143, args, run, dir_ + "/first.log", &last);
  ::unsetenv("TORCHELASTIC_RUN_ID");
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(test::read_text(run + "/.torchrun"), "job-1\n");
  std::string same;
  for (const auto& a : args) same += " " + a;
  const auto restart = [&](const std::string& job, const std::string& extra) {
    return test::run_command("TORCHELASTIC_RESTART_COUNT=1 TORCHELASTIC_RUN_ID=" + job + " " +
                             std::string(STOCH_BINARY) + same + extra);
  };
  auto r =
      restart("job-2", "");  // another job's attempt 0 refused this folder: so does its restart
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": already holds checkpoints; continue it with `stoch resume"),
            std::string::npos)
      << r.output;
  r = restart("job-1", " --set optim.lr=0.02");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": already holds checkpoints of another config (optim.lr is 0.01 "
                                "there, 0.02 in this command)"),
            std::string::npos)
      << r.output;
  r = restart("job-1", "");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("torchrun restart 1: " + run + " holds checkpoints; resuming it"),
            std::string::npos)
      << r.output;
  const auto losses = train_losses(run);
  ASSERT_EQ(losses.size(), 400u);  // the steps before the stop kept, the rest trained once
  EXPECT_EQ(losses.rbegin()->first, 400);
}

// A folder without checkpoints (a run killed before its first) starts afresh: its old metrics,
// TensorBoard events included, go, so neither view mixes the dead run's curves in.
TEST_F(Resume, TrainAfreshDropsTheDeadRunsMetricsAndEvents) {
  const std::string run = dir_ + "/dead";
  test::fs::create_directories(run + "/tb");
  test::write_text(run + "/tb/events.out.tfevents.1.dead", "old events");
  test::write_text(run + "/metrics.jsonl", "{\"step\": 900, \"split\": \"train\", \"loss\": 1}\n");
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=3").code,
            0);
  EXPECT_FALSE(exists(run + "/tb/events.out.tfevents.1.dead"));
  EXPECT_EQ(train_losses(run).size(), 3u);
}

// A finished run kept as results only (its checkpoints removed) is not erased by a fresh start.
TEST_F(Resume, TrainRefusesAFinishedRunKeptAsResultsOnly) {
  const std::string run = dir_ + "/kept";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=4").code,
            0);
  test::fs::remove_all(run + "/checkpoints");
  const std::string metrics = test::read_text(run + "/metrics.jsonl");
  const auto r = test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=2");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": holds a finished run's results (metrics to step 4, no "
                                "checkpoints) that a fresh run would erase"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(test::read_text(run + "/metrics.jsonl"), metrics);
}

// A run cannot be shortened: its config.yaml said fewer steps than its checkpoints held.
TEST_F(Resume, AShorterTrainStepsIsRefused) {
  const std::string run = dir_ + "/long";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=10").code,
            0);
  const std::string config = test::read_text(run + "/config.yaml");
  const auto r = test::run_stoch("resume " + run + " --set train.steps=5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--set train.steps=5: " + run +
                          " is already at step 10 (its newest checkpoint); a run cannot be "
                          "shortened"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(test::read_text(run + "/config.yaml"), config);
  // The same steps, or more, continue as before.
  EXPECT_EQ(test::run_stoch("resume " + run + " --set train.steps=10").code, 0);
}

// config.yaml can be edited by hand: a key that cannot change on resume must hold what the
// checkpoint trained with (an edited learning rate, or a deleted line read as its default, went
// on without a word), and a refused resume leaves the file as it was (a --set was written before
// the checkpoint loaded).
TEST_F(Resume, AHandEditedConfigIsHeldToItsCheckpoint) {
  const std::string run = dir_ + "/edited";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=5").code,
            0);
  const std::string path = run + "/config.yaml", whole = test::read_text(path);
  // The file with the first `from` replaced (the file unchanged when there is none).
  const auto replaced = [&](const std::string& from, const std::string& to) {
    const auto at = whole.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? whole
                                   : whole.substr(0, at) + to + whole.substr(at + from.size());
  };
  const auto lr_at = whole.find("  lr: ");
  ASSERT_NE(lr_at, std::string::npos);
  const std::string lr_line = whole.substr(lr_at, whole.find('\n', lr_at) + 1 - lr_at);
  test::write_text(path, replaced(lr_line, "  lr: 0.5\n"));
  test::expect_refused(
      "resume " + run + " --set train.steps=10",
      path + ": optim.lr is 0.5 but " + test::checkpoint_dir(run, 5) + " was trained with ");
  // A deleted line reads as the key's default: refused too, and the --set is not written.
  const std::string without_lr = replaced(lr_line, "");
  test::write_text(path, without_lr);
  test::expect_refused("resume " + run + " --set train.steps=10", ": optim.lr is ");
  EXPECT_EQ(test::read_text(path), without_lr);
  // Keys that may change on resume may change in the file too.
  test::write_text(path, replaced("  steps: 5 ", "  steps: 8 "));
  const auto r = test::run_stoch("resume " + run);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(train_losses(run).size(), 8u);
  // A shorter count from the file is named as the file's, not as a --set.
  test::write_text(path, replaced("  steps: 5 ", "  steps: 3 "));
  test::expect_refused("resume " + run, path + ": train.steps 3: " + run + " is already at step 8");
}

// A resume refused after the run was built (its checkpoint does not load) leaves config.yaml as
// it was: its --set values were written before the checkpoint loaded.
TEST_F(Resume, ARefusedResumeDoesNotWriteItsSets) {
  const std::string run = dir_ + "/refused";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=5").code,
            0);
  // Its weights gone: the config check reads only state.json, and the load refuses the rest.
  const std::string config = test::read_text(run + "/config.yaml");
  test::fs::remove(test::checkpoint_dir(run, 5) + "/model.safetensors");
  test::expect_refused("resume " + run + " --set train.steps=10", "no checkpoint verifies");
  EXPECT_EQ(test::read_text(run + "/config.yaml"), config);
}

// A checkpoint whose files verify but whose state this build cannot take (here an optimizer
// state without one of its tensors) is refused naming the checkpoint, not with a bare "lacks".
TEST_F(Resume, StateACheckpointCannotTakeNamesTheCheckpoint) {
  const std::string run = dir_ + "/lacks";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=5").code,
            0);
  CheckpointStore store(run);
  auto ckpt = store.load(5);
  auto& optim = ckpt.tensors.at("optimizer");
  ASSERT_FALSE(optim.empty());
  optim.erase(optim.begin());
  test::fs::remove_all(ckpt.dir);
  store.save(ckpt, /*keep_last=*/3);
  test::expect_refused("resume " + run + " --set train.steps=10",
                       test::checkpoint_dir(run, 5) + ": optimizer state lacks ");
}

// A resume that finds no checkpoint starts over: step 0's lines (the data line) are written
// once, not kept and written again.
TEST_F(Resume, AResumeWithoutCheckpointsStartsTheMetricsOver) {
  const std::string run = dir_ + "/lost";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=3").code,
            0);
  test::fs::remove_all(run + "/checkpoints");
  // eval has nothing to load and says what to do.
  test::expect_refused("eval " + run, run +
                                          ": no complete checkpoint to load (a run that stopped "
                                          "before its first; `stoch resume " +
                                          run + "` trains it from step 0)");
  const auto r = test::run_stoch("resume " + run + " --set train.steps=5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::count_lines(run + "/metrics.jsonl", "\"split\":\"data\""), 1);
  EXPECT_EQ(train_losses(run).size(), 5u);  // fails on a step logged twice
}

TEST_F(Resume, OnlyKeysThatCannotChangeThePastMayBeOverridden) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/r --set train.steps=5").code,
            0);
  const auto r = test::run_stoch("resume " + dir_ + "/r --set optim.lr=0.5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("optim.lr cannot change on resume"), std::string::npos) << r.output;
}

// A config.yaml cut short would be read with defaults for the keys it lost: resume, eval and the
// sweep refuse it, naming the file, and leave the run as it was. Files written before the last
// line existed (their first line does not promise it) are still read.
TEST_F(Resume, AConfigCutShortIsRefused) {
  const std::string run = dir_ + "/r";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=5").code,
            0);
  const std::string path = run + "/config.yaml";
  const std::string whole = test::read_text(path);
  ASSERT_EQ(whole.substr(whole.size() - 6), "# end\n");
  test::write_text(path, whole.substr(0, whole.size() / 2));
  for (const std::string& cmd : {"resume " + run + " --set train.steps=10", "eval " + run}) {
    const auto r = test::run_stoch(cmd);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find(path + ": cut short (it lacks its last line, '# end')"),
              std::string::npos)
        << r.output;
  }
  EXPECT_EQ(train_losses(run).size(), 5u);  // nothing was trained
  test::write_text(path, "\n");
  const auto empty = test::run_stoch("resume " + run + " --set train.steps=10");
  EXPECT_EQ(empty.code, 2) << empty.output;
  EXPECT_NE(empty.output.find(path + ": empty"), std::string::npos) << empty.output;
  // An older file: the former first line, no last line.
  const size_t body = whole.find('\n') + 1;
  test::write_text(path, "# Resolved by stoch: every key with its value; the run's identity.\n" +
                             whole.substr(body, whole.size() - body - 6));
  const auto old = test::run_stoch("resume " + run + " --set train.steps=10");
  EXPECT_EQ(old.code, 0) << old.output;
  EXPECT_EQ(train_losses(run).size(), 10u);
}

TEST_F(Resume, SigtermCheckpointsTheCurrentStepAndExits143) {
  const std::string run = dir_ + "/term";
  int64_t last = 0;
  ASSERT_NO_FATAL_FAILURE(
      test::signal_midway(SIGTERM, 143,
                          {"train", cfg_, "--run-dir", run, "--set", "train.steps=1000000", "--set",
                           "train.ckpt_every=0", "--set", "train.eval_every=0"},
                          run, dir_ + "/term.log", &last));
}

TEST_F(Resume, SigintCheckpointsTheCurrentStepAndExits130) {
  const std::string run = dir_ + "/int";
  int64_t last = 0;
  ASSERT_NO_FATAL_FAILURE(
      test::signal_midway(SIGINT, 130,
                          {"train", cfg_, "--run-dir", run, "--set", "train.steps=1000000", "--set",
                           "train.ckpt_every=0", "--set", "train.eval_every=0"},
                          run, dir_ + "/int.log", &last));
  // The checkpoint is a complete one: the run resumes from it.
  const auto r =
      test::run_stoch("resume " + run + " --set train.steps=" + std::to_string(last + 2));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(train_losses(run).size(), static_cast<size_t>(last + 2));
}

TEST_F(Resume, SigkillAtARandomMomentResumesFromTheLastCompleteCheckpoint) {
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/straight").code, 0);
  const auto reference = train_losses(dir_ + "/straight");
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 3; ++trial) {
    const std::string run = dir_ + "/kill" + std::to_string(trial);
    const pid_t pid = test::spawn_stoch({"train", cfg_, "--run-dir", run, "--set",
                                         "train.ckpt_every=1", "--set", "train.keep_last=2"},
                                        dir_ + "/kill.log");
    // Die somewhere between the first metrics line and the end of the run.
    ASSERT_TRUE(test::wait_for(
        [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 1; }, 60));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300000));
    ::kill(pid, SIGKILL);
    test::wait_exit(pid);
    const auto r = test::run_stoch("resume " + run);
    ASSERT_EQ(r.code, 0) << r.output;
    const auto resumed = train_losses(run);
    ASSERT_EQ(resumed.size(), reference.size()) << r.output;
    for (const auto& [step, loss] : reference)
      EXPECT_EQ(loss, resumed.at(step)) << "trial " << trial << " step " << step;
  }
}

// The log file is written line by line: a run killed without warning (SIGKILL, the OOM killer)
// keeps every line it logged, and `tail -f log.txt` follows a live run.
TEST_F(Resume, LogFileHoldsEveryLineOfARunKilledWithoutWarning) {
  const std::string run = dir_ + "/logged";
  const pid_t pid = test::spawn_stoch(
      {"train", cfg_, "--run-dir", run, "--set", "train.steps=1000000"}, dir_ + "/logged.log");
  ASSERT_TRUE(test::wait_for(
      [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 1; }, 60));
  // The device line is logged before the first step, so it is on disk by now.
  EXPECT_EQ(test::count_lines(run + "/log.txt", " info device "), 1);
  ::kill(pid, SIGKILL);
  test::wait_exit(pid);
  EXPECT_EQ(test::count_lines(run + "/log.txt", " info device "), 1);
}

// log.txt holds every line the console showed, also those logged before the run folder existed
// (the memory estimate, the data and model line), and a resume appends its own the same way.
TEST_F(Resume, LogFileHoldsTheLinesLoggedBeforeTheRunFolderExisted) {
  const std::string run = dir_ + "/early";
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=2");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("resume " + run + " --set train.steps=4");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string log = test::read_text(run + "/log.txt");
  for (const char* line : {" info memory: ", " info data ", " info attention: "})
    EXPECT_EQ(test::count_lines(run + "/log.txt", line), 2) << line << " in\n" << log;
  EXPECT_LT(log.find(" info memory: "), log.find(" info run dir ")) << log;
  EXPECT_LT(log.find(" info run dir "), log.rfind(" info memory: ")) << log;
  EXPECT_LT(log.rfind(" info memory: "), log.find(" info resuming ")) << log;
}

// A resume says what happened to metrics.jsonl: gone (it started again at the checkpoint's step
// without a word), lines that are not stoch's in the middle (dropped silently), a folder in its
// place (exit 1 with a stream error).
TEST_F(Resume, AResumeSaysWhatBecameOfTheMetricsFile) {
  const std::string run = dir_ + "/metrics";
  ASSERT_EQ(test::run_stoch("train " + cfg_ + " --run-dir " + run + " --set train.steps=5").code,
            0);
  const std::string path = run + "/metrics.jsonl", whole = test::read_text(path);
  test::fs::remove(path);
  auto r = test::run_stoch("resume " + run + " --set train.steps=6");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(path + ": missing; the run's metrics up to step 5 are lost"),
            std::string::npos)
      << r.output;
  test::write_text(path, "{\"step\":0,\"split\":\"data\"}\nedited by hand\n" + whole);
  r = test::run_stoch("resume " + run + " --set train.steps=7");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(
      r.output.find(path + ": dropped 1 line that stoch did not write whole (the first: line 2)"),
      std::string::npos)
      << r.output;
  test::fs::remove(path);
  test::fs::create_directories(path);
  test::expect_refused("resume " + run + " --set train.steps=8", path + ": not a file");
}

// What a resume keeps of metrics.jsonl: whole lines with an integer step up to the
// checkpoint's, in order; torn or foreign lines go. A file with nothing to drop is not
// rewritten, so a resume needs no free space for it.
TEST(MetricsTruncation, KeepsLinesUpToTheStepAndRewritesOnlyWhenSomethingGoes) {
  const std::string dir = test::temp_dir("metrics-truncation");
  const std::string path = dir + "/metrics.jsonl";
  const std::string keep =
      "{\"step\":0,\"split\":\"data\"}\n{\"step\":3,\"split\":\"train\",\"loss\":1.5}\n";
  test::write_text(path, keep + "{\"step\":4,\"split\":\"train\"}\n{\"step\":2.5}\nnot json\n" +
                             "[1]\n{\"step\":3,\"split\":\"eval\"}\n{\"step\":3,\"spl");
  truncate_metrics_after(path, 3);
  EXPECT_EQ(read_whole_file(path), keep + "{\"step\":3,\"split\":\"eval\"}\n");

  struct stat before {
  }, after{};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  truncate_metrics_after(path, 3);
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "a file with nothing to drop was rewritten";

  // A complete last line that lost only its newline is still kept.
  test::write_text(path, keep + "{\"step\":3,\"split\":\"eval\"}");
  truncate_metrics_after(path, 3);
  EXPECT_EQ(read_whole_file(path), keep + "{\"step\":3,\"split\":\"eval\"}\n");
  test::fs::remove_all(dir);
}

}  // namespace
}  // namespace stoch
