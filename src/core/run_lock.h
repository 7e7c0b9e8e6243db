// One writer per run directory: `stoch train` and `stoch resume` hold advisory locks on RUN_DIR
// itself and on RUN_DIR/.lock while they run, and a second process that would write into the
// same directory stops with exit 2 instead. The locks are flock(2)'s: the kernel drops them when
// their owner exits or dies, so the directory of a crashed or killed run is free again at once,
// with nothing to clean up. The folder's lock outlives a deleted .lock; .lock's is the one NFS
// keeps across hosts. .lock keeps the last owner's pid, host and start time for the message.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stoch {

class RunLock {
 public:
  // Takes the lock on dir (which must exist). Throws InputError naming dir and the owner's
  // pid, host and start time when another process holds it. Where the file system has no
  // advisory locks the run goes on unlocked, with a warning. A lock handed over by the process
  // that started this one (kHandoverEnv) is adopted instead of taken.
  explicit RunLock(const std::string& dir);
  // As the constructor, but returns nullptr and puts the owner line in `owner` (empty when
  // unknown) instead of throwing when another process holds the lock.
  static std::unique_ptr<RunLock> try_take(const std::string& dir, std::string& owner);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // New descriptors of these locks that survive exec, for a child that will take this folder's
  // lock: put env() ("STOCH_RUN_LOCK_FD=N,M") in the child's environment and start the child
  // while the Handover lives; it closes them when it goes. The lock passes to the child with no
  // moment where it is free, so no other process can take the run in between (how `stoch sweep`
  // hands a run it claimed to the process that trains it). env() is empty where the folder is
  // unlocked (no advisory locks).
  class Handover {
   public:
    explicit Handover(std::vector<int> fds);
    ~Handover();
    Handover(const Handover&) = delete;
    Handover& operator=(const Handover&) = delete;
    const std::string& env() const { return env_; }

   private:
    std::vector<int> fds_;
    std::string env_;
  };
  Handover hand_over() const;

  static constexpr const char* kHandoverEnv = "STOCH_RUN_LOCK_FD";

 private:
  RunLock(const std::string& dir, std::string* owner);
  void release();
  int dir_fd_ = -1;    // the folder's lock
  int file_fd_ = -1;   // .lock's: the owner's line, and the lock NFS keeps across hosts
  bool busy_ = false;  // another process holds it (try_take)
};

// The owner line ("pid 123 on host, since ...", or "owner unknown" when .lock lost it) when
// another open of the folder holds its lock (another process, or another RunLock of this one);
// nullopt when the folder is free. Only a hint: the lock can change hands right after.
std::optional<std::string> run_lock_owner(const std::string& dir);

}  // namespace stoch
