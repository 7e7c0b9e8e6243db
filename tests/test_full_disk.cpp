// A full disk (a small tmpfs the test mounts; needs root, skipped with the reason otherwise):
// the run ends with exit 1 and one line naming the file and the free space, every earlier
// checkpoint stays complete, no partial checkpoint folder is left, and once there is room again
// `stoch resume` finishes the run with the losses of an uninterrupted one.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <string>

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

  resize("4m");
  r = test::run_stoch("resume " + run);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto want = test::train_losses(straight), got = test::train_losses(run);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << "step " << step;
}

}  // namespace
}  // namespace stoch
