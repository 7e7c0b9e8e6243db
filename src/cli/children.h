// Child processes of `stoch` that stop with it: `--nproc`'s ranks and `sweep`'s runs. Each child
// runs in its own process group, so a terminal's Ctrl-C reaches only the parent, which passes
// every SIGINT/SIGTERM it gets on once (a run's first signal checkpoints it and ends it with
// 130/143, a second one kills it at once). A parent that dies without passing a signal on, even
// by SIGKILL, still sends its children SIGTERM, so none is left writing a run nobody watches.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace stoch::cli {

// The path of the running executable (/proc/self/exe's target), for a child's argv[0].
std::string this_executable();

// What a child runs to be another stoch: the kernel's link to this process's own executable,
// which stays valid when the file it was started from is replaced or deleted. A rebuild during
// a long sweep therefore does not change the code of the sweep's later runs, and a link in
// progress cannot be caught half-written.
inline constexpr const char* kThisExecutable = "/proc/self/exe";

class Children {
 public:
  // Catches SIGINT and SIGTERM until destroyed; at most one Children exists at a time.
  Children();
  ~Children();
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;

  // Starts `program` (argv[0] when empty) with `argv` and `env` (this process's environment when
  // empty), its output appended to `output` (inherited when empty). Throws std::runtime_error
  // when the output file cannot be opened or fork fails.
  pid_t start(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              const std::string& output = "", const std::string& program = "");

  // SIGINT or SIGTERM when one has arrived (the latest), 0 otherwise.
  int signal() const;
  // Passes signals that arrived since the last call on to every running child.
  void forward_signals();
  // Sends `sig` to every running child.
  void send_all(int sig);

  struct Exit {
    pid_t pid;
    int code;               // exit status, or 128 + signal number
    bool signaled = false;  // ended by a signal, not by exiting (143 can be either)
  };
  // Passes on new signals, then waits up to `wait` for a child to end.
  std::optional<Exit> wait(std::chrono::milliseconds wait);
  size_t running() const { return pids_.size(); }

 private:
  std::set<pid_t> pids_;
  int forwarded_ = 0;
};

}  // namespace stoch::cli
