#include "cli/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "cli/children.h"
#include "core/cpus.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"

extern char** environ;

namespace stoch::cli {
namespace {

// A port nobody listens on now; rank 0's store binds it a moment later.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(stoch::str("--nproc: socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(
        stoch::str("--nproc: no free port on 127.0.0.1: ", std::strerror(errno)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// This process's environment with torchrun's variables for `rank` set (and any inherited ones
// replaced).
std::vector<std::string> rank_environment(int64_t rank, int64_t nproc, int port) {
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"RANK", std::to_string(rank)},        {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(nproc)}, {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", "127.0.0.1"},          {"MASTER_PORT", std::to_string(port)}};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    bool replaced = false;
    for (const auto& [k, v] : vars) replaced |= kv.rfind(k + "=", 0) == 0;
    if (!replaced) env.push_back(kv);
  }
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

std::vector<std::string> rank_args(std::vector<std::string> head,
                                   const std::vector<std::string>& sets) {
  for (const auto& s : sets) {
    head.push_back("--set");
    head.push_back(s);
  }
  return head;
}

void check_not_launched(int64_t nproc) {
  const char* ws = std::getenv("WORLD_SIZE");
  if (nproc > 1 && ws && *ws)
    throw InputError(stoch::str("--nproc ", nproc, ": this process already is a rank (WORLD_SIZE=",
                                ws, ", set by torchrun?); drop --nproc"));
}

int launch_local_ranks(int64_t nproc, const std::vector<std::string>& args) {
  check_not_launched(nproc);
  // Each rank is a process with its own copy of the model: a mistyped count (100000) started
  // hundreds of them and filled the memory before anything could refuse it.
  const int64_t most = std::max<int64_t>(16, 4 * static_cast<int64_t>(usable_cpus()));
  if (nproc > most)
    throw InputError(stoch::str("--nproc ", nproc, ": at most ", most, " ranks on this machine (",
                                usable_cpus(), " usable CPUs; 4 per CPU, or 16)"));
  const int port = free_port();
  const std::string self = this_executable();
  Children ranks;
  std::vector<pid_t> pids;  // by rank
  for (int64_t r = 0; r < nproc; ++r) {
    // A signal while starting them: start no more. Those started wait for the missing ranks
    // and have trained nothing, so nothing is lost by killing them (they would wait out
    // dist.timeout_s); 128 + the signal is the launcher's exit, as after an orderly stop.
    if (const int sig = ranks.signal(); sig != 0) {
      ranks.send_all(SIGKILL);
      while (ranks.running() > 0) ranks.wait(std::chrono::milliseconds(200));
      log::warn(stoch::str("received signal ", sig, " while starting ", nproc, " ranks (", r,
                           " started); stopped them"));
      return 128 + sig;
    }
    std::vector<std::string> argv = {self};
    argv.insert(argv.end(), args.begin(), args.end());
    pids.push_back(ranks.start(argv, rank_environment(r, nproc, port), "", kThisExecutable));
  }

  using Clock = std::chrono::steady_clock;
  int result = 0;
  bool failed = false;
  Clock::time_point kill_at = Clock::time_point::max();
  int grace_s = 0;
  while (ranks.running() > 0) {
    if (Clock::now() >= kill_at) {
      log::warn(stoch::str(counted(static_cast<int64_t>(ranks.running()), "rank"),
                           " still running ", grace_s, " s after being told to stop; killed"));
      ranks.send_all(SIGKILL);
      kill_at = Clock::time_point::max();
    }
    const auto exit = ranks.wait(std::chrono::milliseconds(200));
    if (!exit || exit->code == 0 || failed) continue;
    failed = true;
    result = exit->code;
    // After a signal we passed on, 128 + signal is every rank's orderly exit.
    if (ranks.signal() != 0 && exit->code == 128 + ranks.signal()) continue;
    grace_s = 30;
    // A rank killed from outside cannot say so itself, and the others would only find it lost
    // after dist.timeout_s: say which, and end the run as the failure it is (exit 1, not 137).
    // They cannot checkpoint without it either (every rank agrees on a checkpoint) and wait for
    // it inside a collective, deaf to SIGTERM: a short grace only.
    if (exit->signaled) {  // an orderly stop's 143 is an exit, with a checkpoint being written
      grace_s = 5;
      const auto rank = std::find(pids.begin(), pids.end(), exit->pid) - pids.begin();
      log::error(stoch::str("rank ", rank, " (pid ", exit->pid, ") was killed by signal ",
                            exit->code - 128, " (", strsignal(exit->code - 128),
                            "); stopping the other ranks"));
      result = kExitFailure;
    }
    // Otherwise the first failure is the run's result, and the other ranks would wait for the
    // failed one inside a collective: stop them, and kill them if that does not end them.
    ranks.send_all(SIGTERM);
    kill_at = Clock::now() + std::chrono::seconds(grace_s);
  }
  return result;
}

}  // namespace stoch::cli
