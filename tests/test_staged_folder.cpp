// StagedFolder: a folder that appears whole or not at all (core/staged_folder.h).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "core/errors.h"
#include "core/staged_folder.h"
#include "test_util.h"

namespace stoch {
namespace {

// A pid that belonged to a process that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

// A killed export or data prepare leaves OUT.tmp-PID (a signal skips the destructor): the next
// staging of OUT removes it, but not one of a live process, nor another target's.
TEST(StagedFolder, RemovesTheStagesOfDeadProcessesOnly) {
  const std::string dir = test::temp_dir("staged");
  const std::string dead = dir + "/out.tmp-" + std::to_string(dead_pid());
  const std::string live = dir + "/out.tmp-" + std::to_string(::getppid());
  const std::string other = dir + "/outer.tmp-" + std::to_string(dead_pid());
  for (const auto& d : {dead, live, other}) test::fs::create_directories(d);
  {
    StagedFolder staged(dir + "/out", "--out");
    test::write_text(staged.path() + "/a.txt", "a");
    staged.commit();
  }
  EXPECT_FALSE(test::fs::exists(dead));
  EXPECT_TRUE(test::fs::exists(live));
  EXPECT_TRUE(test::fs::exists(other));
  EXPECT_EQ(test::read_text(dir + "/out/a.txt"), "a");
}

// The current directory cannot be renamed onto: refused before any work, by name.
TEST(StagedFolder, TheCurrentDirectoryIsRefusedUpFront) {
  const std::string dir = test::temp_dir("staged");
  test::fs::create_directories(dir + "/empty");
  const auto before = test::fs::current_path();
  test::fs::current_path(dir + "/empty");
  std::string message;
  try {
    StagedFolder::check_target(".", "--out .");
  } catch (const InputError& e) {
    message = e.what();
  }
  test::fs::current_path(before);
  EXPECT_EQ(message,
            "--out .: is the current directory, which the finished folder cannot replace; name a "
            "new folder in it");
  EXPECT_NO_THROW(StagedFolder::check_target(dir + "/empty", "--out"));
  EXPECT_NO_THROW(StagedFolder::check_target(dir + "/absent", "--out"));
}

}  // namespace
}  // namespace stoch
