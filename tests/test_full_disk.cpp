// A full disk (a small tmpfs the test mounts; needs root, skipped with the reason otherwise):
// the run ends with exit 1 and one line naming the file and the free space, every earlier
// checkpoint stays complete, no partial checkpoint folder is left, and once there is room again
// `stoch resume` finishes the run with the losses of an uninterrupted one. The same for a
// checkpoint folder whose file system turns read-only under the live run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "chess/chess_test.h"
#include "core/whole_file.h"
#include "data/chess/position_data.h"
#include "data/token_formats.h"
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
  // Takes every free page of the tmpfs with a filler file but `leave_pages`.
  void fill(int leave_pages) {
    const std::string path = mnt_ + "/filler";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string page(4096, 'x');
    off_t size = 0;
    for (ssize_t n; (n = ::write(fd, page.data(), page.size())) > 0;) size += n;
    ASSERT_EQ(errno, ENOSPC);
    ASSERT_EQ(::ftruncate(fd, std::max<off_t>(0, size / 4096 * 4096 - leave_pages * 4096)), 0);
    ::close(fd);
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
  // The log went to disk line by line while there was room, so the full disk did not take it.
  const auto log = read_whole_file(run + "/log.txt");
  ASSERT_TRUE(log);
  EXPECT_NE(log->find(" info device "), std::string::npos) << *log;

  // Resumed while the disk is full (the failed checkpoint's space is freed when its folder goes,
  // so it is filled again): the metrics are cut back to the checkpoint's step by writing a copy,
  // which cannot fit. The run ends the same way and the file is untouched.
  const auto metrics = read_whole_file(run + "/metrics.jsonl");
  ASSERT_TRUE(metrics && !metrics->empty());
  ASSERT_NO_FATAL_FAILURE(fill(0));
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

// A disk already full when the run starts: its first log lines cannot be written. The run ends
// with one line naming log.txt and the free space (it said only "Failed flush to file" before).
TEST_F(FullDisk, ARunThatCannotWriteItsFirstLogLinesSaysWhy) {
  const std::string cfg = dir_ + "/c.yaml";
  test::write_text(cfg, test::tiny_lm_config(3));
  ASSERT_NO_FATAL_FAILURE(fill(0));
  const auto r = test::run_stoch("train " + cfg + " --run-dir " + mnt_ + "/run");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("writing the log failed: Failed flush to file " + mnt_ +
                          "/run/log.txt: No space left on device (0 bytes free on its file "
                          "system)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(mnt_ + "/run/config.yaml"));
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

// `stoch data prepare` onto a disk of every size from nearly nothing to enough: each try
// either succeeds with a folder that reads back whole, or ends with exit 1 naming the free
// space and leaves neither the folder nor its staging copy. The llmc shards are small files,
// whose bytes a buffered writer would only try to write when it closes them.
TEST_F(FullDisk, DataPrepareLeavesAWholeTokenFolderOrNone) {
  std::string text;
  for (int i = 0; text.size() < 20000; ++i) text += "the quick brown fox " + std::to_string(i);
  const std::string in = dir_ + "/in.txt", out = mnt_ + "/tok";
  test::write_text(in, text);
  for (const std::string format : {"stoch", "llmc"}) {
    int whole = 0, full = 0;
    for (int kib = 8; kib <= 72; kib += 8) {
      for (const auto& e : test::fs::directory_iterator(mnt_)) test::fs::remove_all(e.path());
      resize(std::to_string(kib) + "k");
      const auto r =
          test::run_stoch("data prepare --input " + in + " --out " + out +
                          " --val-fraction 0.1 --format " + format + " --shard-tokens 1500");
      const std::string where = format + " on " + std::to_string(kib) + " KiB\n" + r.output;
      if (r.code == 0) {
        ++whole;
        const auto folder = data::open_token_folder(out, format);
        EXPECT_EQ(folder.train.size() + folder.val.size(), text.size()) << where;
        continue;
      }
      ++full;
      EXPECT_EQ(r.code, 1) << where;
      EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << where;
      for (const auto& e : test::fs::directory_iterator(mnt_))
        ADD_FAILURE() << "left behind: " << e.path() << " by " << where;
    }
    EXPECT_GT(whole, 0) << format << ": the largest disk is too small";
    EXPECT_GT(full, 0) << format << ": the smallest disk is large enough";
  }
}

// `stoch compare` into a folder on a full disk: exit 1 naming the free space, and the report
// an earlier compare wrote there stays whole and unchanged (no half-written table, no
// temporary file left).
TEST_F(FullDisk, CompareOnAFullDiskKeepsTheEarlierReport) {
  const std::string sweep = dir_ + "/sweep", out = mnt_ + "/cmp";
  for (int seed = 1; seed <= 3; ++seed) {
    const std::string run = sweep + "/r" + std::to_string(seed);
    test::fs::create_directories(run);
    test::write_text(run + "/config.yaml", "run:\n  seed: " + std::to_string(seed) +
                                               "\ntask: lm\nmodel:\n  d_model: 8\n");
    test::write_text(
        run + "/metrics.jsonl",
        "{\"step\": 10, \"split\": \"eval\", \"val/loss\": 2." + std::to_string(seed) + "}\n");
  }
  const std::string cmd = "compare " + sweep + " --out " + out + " --python /bin/false";
  resize("1m");
  ASSERT_EQ(test::run_stoch(cmd).code, 0);
  const auto before = read_whole_file(out + "/compare.md");
  ASSERT_TRUE(before && !before->empty());

  fill(0);  // then the report asked for in the other direction
  const auto r = test::run_stoch(cmd + " --mode max");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  EXPECT_EQ(read_whole_file(out + "/compare.md"), before);
  for (const auto& e : test::fs::directory_iterator(out))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();
}

// `stoch tokenizer train` into a folder that holds an earlier tokenizer, on a disk with room for
// the new vocab.json but not for merges.txt after it: exit 1 naming the free space, and the
// earlier pair stays as it was (a new vocabulary with old merges would tokenise wrongly).
TEST_F(FullDisk, TokenizerTrainLeavesTheEarlierPairWhole) {
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  const std::string in = dir_ + "/in.txt", out = mnt_ + "/tok";
  test::write_text(in, text);
  const std::string cmd = "tokenizer train --input " + in + " --out " + out + " --vocab-size ";
  resize("1m");
  ASSERT_EQ(test::run_stoch(cmd + "300").code, 0);
  const auto vocab = read_whole_file(out + "/vocab.json"),
             merges = read_whole_file(out + "/merges.txt");
  ASSERT_TRUE(vocab && merges);
  ASSERT_LT(vocab->size() + 512, 4096u) << "the new vocab.json must fit in the one page left";

  fill(1);
  const auto r = test::run_stoch(cmd + "320");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("merges.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  EXPECT_EQ(read_whole_file(out + "/vocab.json"), vocab);
  EXPECT_EQ(read_whole_file(out + "/merges.txt"), merges);
  for (const auto& e : test::fs::directory_iterator(out))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();
}

// `stoch export` onto a full disk: exit 1 naming the free space and no folder, whole or
// staged, left under the mount; once there is room the same command writes the export.
TEST_F(FullDisk, ExportLeavesNoHalfFolder) {
  const std::string cfg = dir_ + "/c.yaml", run = dir_ + "/run", out = mnt_ + "/hf";
  test::write_text(cfg, test::tiny_lm_config(5));
  ASSERT_EQ(test::run_stoch("train " + cfg + " --run-dir " + run).code, 0);
  const std::string cmd = "export " + run + " --format hf-gpt2 --out " + out;
  fill(1);  // room for config.json, none for model.safetensors
  auto r = test::run_stoch(cmd);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  for (const auto& e : test::fs::directory_iterator(mnt_))
    EXPECT_EQ(e.path().filename(), "filler") << "left behind: " << e.path();

  test::fs::remove(mnt_ + "/filler");
  r = test::run_stoch(cmd);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(test::fs::exists(out + "/model.safetensors"));
}

// `stoch data chess` onto a disk that fills partway: exit 1 naming the file and the free space,
// a folder whose meta.json still describes whole records, and once there is room the same
// command continues it to the bytes a run on a large disk writes.
TEST_F(FullDisk, ChessDataEndsCleanlyAndContinuesOnceThereIsRoom) {
  STOCH_REQUIRE(test::stockfish_missing());
  const auto generate = [](const std::string& out) {
    return "data chess --out " + out + " --positions 600 --depth 4 --max-plies 60 --seed 5";
  };
  const std::string straight = dir_ + "/straight", out = mnt_ + "/chess";
  ASSERT_EQ(test::run_stoch(generate(straight)).code, 0);

  resize("40k");  // room for about half of the 600 records of 128 bytes
  auto r = test::run_stoch(generate(out));
  ASSERT_EQ(r.code, 1) << "the disk never filled; make the tmpfs smaller\n" << r.output;
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" free on its file system"), std::string::npos) << r.output;
  // meta.json, written before the first record, counts only whole records.
  const auto train = chess::read_positions(out, "train"), val = chess::read_positions(out, "val");
  EXPECT_LT(train.size() + val.size(), 600u);

  resize("1m");
  r = test::run_stoch(generate(out));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(resumed)"), std::string::npos) << r.output;
  for (const char* file : {"/train.bin", "/val.bin"})
    EXPECT_EQ(read_whole_file(out + file), read_whole_file(straight + file)) << file;
}

}  // namespace
}  // namespace stoch
