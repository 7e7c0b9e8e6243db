// One writer per run directory (core/run_lock.h): while a run is live, a second train or resume
// into its folder exits 2 naming the owner and changes nothing; once the owner is killed, the
// folder is free again without any clean-up.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "core/errors.h"
#include "core/run_lock.h"
#include "test_util.h"

namespace stoch {
namespace {

TEST(RunLock, SecondWriterExitsTwoAndAKilledOwnersLockIsTakenOver) {
  const std::string dir = test::temp_dir("lock");
  const std::string cfg = dir + "/c.yaml", run = dir + "/run";
  test::write_text(cfg, test::tiny_lm_config(1000000));
  const pid_t pid = test::spawn_stoch({"train", cfg, "--run-dir", run, "--set",
                                       "train.ckpt_every=0", "--set", "train.eval_every=0"},
                                      dir + "/owner.log");
  ASSERT_TRUE(test::wait_for(
      [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 3; }, 60))
      << test::read_text(dir + "/owner.log");
  const std::string owner = "pid " + std::to_string(pid) + " on ";
  const std::string config_before = test::read_text(run + "/config.yaml");

  // A second train: the folder has no checkpoint yet, so only the lock can stop it.
  auto r = test::run_stoch("train " + cfg + " --run-dir " + run + " --set train.steps=3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": another stoch process is writing this run (" + owner),
            std::string::npos)
      << r.output;
  r = test::run_stoch("resume " + run + " --set train.steps=5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": another stoch process is writing this run (" + owner),
            std::string::npos)
      << r.output;
  // Deleting .lock does not free the folder: the lock is the folder's own.
  ASSERT_TRUE(test::fs::remove(run + "/.lock"));
  r = test::run_stoch("train " + cfg + " --run-dir " + run + " --set train.steps=3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(run + ": another stoch process is writing this run (owner unknown)"),
            std::string::npos)
      << r.output;
  // None touched the run: its config is the owner's and its metrics keep growing.
  EXPECT_EQ(test::read_text(run + "/config.yaml"), config_before);
  const int64_t lines = test::count_lines(run + "/metrics.jsonl", "\"train\"");
  EXPECT_TRUE(test::wait_for(
      [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") > lines; }, 60));

  ::kill(pid, SIGKILL);
  test::wait_exit(pid);
  // The kernel dropped the dead owner's lock (the killed run left no checkpoint): a new train
  // takes the folder over at once and trains.
  const pid_t next = test::spawn_stoch({"train", cfg, "--run-dir", run, "--set",
                                        "train.ckpt_every=0", "--set", "train.eval_every=0"},
                                       dir + "/next.log");
  EXPECT_TRUE(test::wait_for(
      [&] {
        // "run dir" is logged once the old metrics are gone: the lines counted are new.
        return test::read_text(run + "/.lock").find("pid " + std::to_string(next) + " on ") !=
                   std::string::npos &&
               test::read_text(dir + "/next.log").find("run dir ") != std::string::npos &&
               test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 3;
      },
      60))
      << test::read_text(dir + "/next.log");
  ::kill(next, SIGTERM);
  EXPECT_EQ(test::wait_exit(next), 143) << test::read_text(dir + "/next.log");
}

// A process that holds a run's lock hands it to a child through RunLock::hand_over: the
// child adopts it and trains, where without it (or with a descriptor of another file) the same
// command exits 2 because the lock is held.
TEST(RunLock, HandedOverLockIsAdoptedByTheChild) {
  const std::string dir = test::temp_dir("lock-handover");
  const std::string cfg = dir + "/c.yaml", run = dir + "/run";
  test::write_text(cfg, test::tiny_lm_config(3));
  test::fs::create_directories(run);
  RunLock lock(run);
  const std::string train = std::string(STOCH_BINARY) + " train " + cfg + " --run-dir " + run;
  auto r = test::run_command(train);
  EXPECT_EQ(r.code, 2) << r.output;
  r = test::run_command(std::string(RunLock::kHandoverEnv) + "=0 " + train);  // stdin: ignored
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_FALSE(test::fs::exists(run + "/metrics.jsonl"));
  {
    const RunLock::Handover handover = lock.hand_over();
    ASSERT_EQ(handover.env().rfind(std::string(RunLock::kHandoverEnv) + "=", 0), 0u)
        << handover.env();
    r = test::run_command(handover.env() + " " + train);
  }
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::train_losses(run).size(), 3u);
  // The child wrote its own owner line, and the lock is still this process's own.
  EXPECT_EQ(test::read_text(run + "/.lock").find("pid " + std::to_string(::getpid()) + " on "),
            std::string::npos);
  EXPECT_TRUE(run_lock_owner(run).has_value());
}

// run_lock_owner takes the lock for a moment to look; a run starting in that moment still gets
// it, since RunLock tries again for a short while before calling the lock held.
TEST(RunLock, AMomentaryHolderDoesNotStopARun) {
  const std::string dir = test::temp_dir("lock-probe");
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  std::thread release([fd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::close(fd);
  });
  EXPECT_NO_THROW(RunLock lock(dir));
  release.join();
  // A holder that stays is still reported, with the owner line the last RunLock left.
  const int held = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_EQ(::flock(held, LOCK_EX | LOCK_NB), 0);
  std::string owner = "unset";
  EXPECT_EQ(RunLock::try_take(dir, owner), nullptr);
  EXPECT_EQ(owner.rfind("pid " + std::to_string(::getpid()) + " on ", 0), 0u) << owner;
  ::close(held);
}

// A process that holds only .lock (stoch before 2026-12-08, or this run seen from another host
// over NFS, where a folder's flock is local) still stops a run.
TEST(RunLock, AHolderOfTheLockFileAloneStillStopsARun) {
  const std::string dir = test::temp_dir("lock-file");
  const int fd = ::open((dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  std::string owner = "unset";
  EXPECT_EQ(RunLock::try_take(dir, owner), nullptr);
  EXPECT_TRUE(run_lock_owner(dir).has_value());
  ::close(fd);
  EXPECT_FALSE(run_lock_owner(dir).has_value());
  EXPECT_NE(RunLock::try_take(dir, owner), nullptr);
}

// The lock is the folder's, not .lock's: deleting .lock under a live lock (audit D, 2026-12-07:
// it used to let a second writer in) loses only the owner's line.
TEST(RunLock, DeletingTheLockFileDoesNotFreeTheRun) {
  const std::string dir = test::temp_dir("lock-deleted");
  RunLock lock(dir);
  ASSERT_TRUE(test::fs::remove(dir + "/.lock"));
  std::string owner = "unset";
  EXPECT_EQ(RunLock::try_take(dir, owner), nullptr);
  EXPECT_EQ(owner, "");
  EXPECT_EQ(run_lock_owner(dir), std::optional<std::string>("owner unknown"));
  try {
    RunLock second(dir);
    ADD_FAILURE() << "a second lock was taken";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), dir +
                                         ": another stoch process is writing this run (owner "
                                         "unknown); wait for it to finish or stop it, then resume");
  }
}

// A sweep leaves a run that another process is writing to that process, says so, and exits 1
// once it has done the rest; the probe it uses sees a lock of this process's too.
TEST(RunLock, SweepsLeaveRunsThatAnotherProcessWrites) {
  const std::string dir = test::temp_dir("lock-sweep");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(4));
  const std::string busy = dir + "/sw/optim.lr=0.01,seed=1";
  test::fs::create_directories(busy);
  EXPECT_FALSE(run_lock_owner(busy).has_value());  // no lock file yet
  {
    RunLock lock(busy);
    const auto owner = run_lock_owner(busy);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->rfind("pid " + std::to_string(::getpid()) + " on ", 0), 0u) << *owner;
    const auto r =
        test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --out " + dir + "/sw");
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("sweep: optim.lr=0.01,seed=1 is being written by another process (" +
                            *owner + "); skipping it"),
              std::string::npos)
        << r.output;
    EXPECT_FALSE(test::fs::exists(busy + "/metrics.jsonl"));
    EXPECT_TRUE(test::fs::exists(dir + "/sw/optim.lr=0.02,seed=1/checkpoints/step-00000004"));
  }
  EXPECT_FALSE(run_lock_owner(busy).has_value());  // released with the RunLock
  const auto r =
      test::run_stoch("sweep " + dir + "/c.yaml --grid optim.lr=0.01,0.02 --out " + dir + "/sw");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(test::fs::exists(busy + "/checkpoints/step-00000004"));
}

}  // namespace
}  // namespace stoch
