// One writer per run directory: `stoch train` and `stoch resume` hold an advisory lock on
// RUN_DIR/.lock while they run, and a second process that would write into the same directory
// stops with exit 2 instead. The lock is flock(2)'s: the kernel drops it when its owner exits or
// dies, so the directory of a crashed or killed run is free again at once, with nothing to clean
// up. The file keeps the last owner's pid, host and start time for the message.
#pragma once

#include <optional>
#include <string>

namespace stoch {

class RunLock {
 public:
  // Takes the lock on dir/.lock (dir must exist). Throws InputError naming dir and the owner's
  // pid, host and start time when another process holds it. Where the file system has no
  // advisory locks the run goes on unlocked, with a warning.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// The owner line ("pid 123 on host, since ...") when another open of dir/.lock holds the lock
// (another process, or another RunLock of this one); nullopt when the folder is free or has
// never been locked. Only a hint: the lock can change hands right after.
std::optional<std::string> run_lock_owner(const std::string& dir);

}  // namespace stoch
