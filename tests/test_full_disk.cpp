// A full disk (a small tmpfs the test mounts; needs root, skipped with the reason otherwise):
// the run ends with exit 1 and one line naming the file and the free space, every earlier
// checkpoint stays complete, no partial checkpoint folder is left, and once there is room again
// `stoch resume` finishes the run with the losses of an uninterrupted one. The same for a
// checkpoint folder whose file system turns read-only under the live run.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/whole_file.h"
#include "test_util.h"

namespace stoch {
namespace {

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("full-disk");
    mnt_ = dir_ + "/mnt";
    test::fs::create_directories(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=160k") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                   << "); the full-disk test needs root";
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
    test::fs::remove_all(dir_);
  }
  void resize(const std::string& size) {
    ASSERT_EQ(::mount("tmpfs", mnt_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()), 0)
        << std::strerror(errno);
  }
  std::string dir_, mnt_;
  bool mounted_ = false;
};

TEST_F(FullDisk, EndsCleanlyKeepsEveryCheckpointAndResumes) {
  const std::string cfg = dir_ + "/c.yaml";
  test::write_text(cfg, test::tiny_lm_config(60));
  const std::string sets =
      " --set train.ckpt_every=4 --set train.keep_last=0 --set model.dropout=0";
  const std::string run = mnt_ + "/run", straight = dir_ + "/straight";
  ASSERT_EQ(test::run_stoch("train " + cfg + " --run-dir " + straight + sets).code, 0);

  auto r = test::run_stoch("train " + cfg + " --run-dir " + run + sets);
  ASSERT_EQ(r.code, 1) << "the disk never filled; make the tmpfs smaller\n" << r.output;
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  // Every checkpoint folder is complete (a manifest), and no partial one is left.
  int complete = 0;
  for (const auto& e : test::fs::directory_iterator(run + "/checkpoints")) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.rfind("step-", 0), 0u) << "left behind: " << name;
    EXPECT_TRUE(test::fs::exists(e.path() / "manifest.json")) << name;
    ++complete;
  }
  EXPECT_GE(complete, 1) << r.output;

  // Resumed while the disk is still full: the metrics are cut back to the checkpoint's step
  // by writing a copy, which cannot fit. The run ends the same way and the file is untouched.
  const auto metrics = read_whole_file(run + "/metrics.jsonl");
  ASSERT_TRUE(metrics && !metrics->empty());
  r = test::run_stoch("resume " + run);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("metrics.jsonl"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  EXPECT_EQ(read_whole_file(run + "/metrics.jsonl"), metrics);

  resize("4m");
  r = test::run_stoch("resume " + run);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto want = test::train_losses(straight), got = test::train_losses(run);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << "step " << step;
}

// The checkpoints folder is its own tmpfs, remounted read-only between two checkpoint writes
// while the run trains: a mount cannot turn read-only while a file on it is open for writing
// (EBUSY), and the run folder always has metrics.jsonl open, so the fault goes where the run
// only writes now and then.
TEST_F(FullDisk, ACheckpointFolderTurnedReadOnlyEndsTheRunAndResumes) {
  const std::string cfg = dir_ + "/c.yaml";
  test::write_text(cfg, test::tiny_lm_config(200));
  const std::vector<std::string> sets = {
      "--set", "train.ckpt_every=4", "--set", "train.keep_last=0", "--set", "model.dropout=0"};
  std::string sets_text;
  for (const auto& s : sets) sets_text += " " + s;
  const std::string straight = dir_ + "/straight", run = dir_ + "/ro", ckpts = run + "/checkpoints";
  ASSERT_EQ(test::run_stoch("train " + cfg + " --run-dir " + straight + sets_text).code, 0);

  test::fs::create_directories(ckpts);
  ASSERT_EQ(::mount("tmpfs", ckpts.c_str(), "tmpfs", 0, "size=8m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{ckpts};

  std::vector<std::string> args = {"train", cfg, "--run-dir", run};
  args.insert(args.end(), sets.begin(), sets.end());
  const std::string log = dir_ + "/ro.log";
  const pid_t pid = test::spawn_stoch(args, log);
  ASSERT_TRUE(
      test::wait_for([&] { return test::fs::exists(ckpts + "/step-00000004/manifest.json"); }, 120))
      << test::read_text(log);
  // Retried while a checkpoint file is open (EBUSY).
  const bool read_only = test::wait_for(
      [&] {
        return ::mount("tmpfs", ckpts.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=8m") == 0;
      },
      60);
  const int code = test::wait_exit(pid);
  ASSERT_TRUE(read_only) << std::strerror(errno);
  const std::string out = test::read_text(log);
  ASSERT_EQ(code, 1) << "the run finished before its folder turned read-only\n" << out;
  EXPECT_NE(out.find("Read-only file system"), std::string::npos) << out;
  EXPECT_NE(out.find("earlier checkpoints are intact"), std::string::npos) << out;
  // Every step folder is complete; a staging folder the read-only file system kept from being
  // removed is never taken for a checkpoint (its name is not step-*).
  int complete = 0;
  for (const auto& e : test::fs::directory_iterator(ckpts)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0) {
      EXPECT_EQ(name.rfind(".tmp-", 0), 0u) << "left behind: " << name;
      continue;
    }
    EXPECT_TRUE(test::fs::exists(e.path() / "manifest.json")) << name;
    ++complete;
  }
  EXPECT_GE(complete, 1) << out;

  ASSERT_EQ(::mount("tmpfs", ckpts.c_str(), "tmpfs", MS_REMOUNT, "size=8m"), 0)
      << std::strerror(errno);
  const auto r = test::run_stoch("resume " + run);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto want = test::train_losses(straight), got = test::train_losses(run);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << "step " << step;
}

}  // namespace
}  // namespace stoch
