#include "cli/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "core/strings.h"

extern char** environ;

namespace stoch::cli {
namespace {

volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_signal_count = 0;

void on_signal(int sig) {
  g_signal = sig;
  g_signal_count = g_signal_count + 1;
}

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

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
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
  const int port = free_port();
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw std::runtime_error("--nproc: cannot find this executable (/proc/self/exe)");
  self[n] = '\0';

  // Before the first fork, so a signal in between is not lost.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids;
  for (int64_t r = 0; r < nproc; ++r) {
    // Everything the child needs is built before fork: between fork and exec only
    // async-signal-safe calls are allowed in a process with threads.
    std::vector<std::string> argv_s = {self};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s = rank_environment(r, nproc, port);
    auto argv = pointers(argv_s), envp = pointers(env_s);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(stoch::str("--nproc: fork: ", std::strerror(errno)));
    if (pid == 0) {
      // Its own process group: a terminal's Ctrl-C reaches the launcher only, which passes it
      // on once (a rank's second signal kills it without a checkpoint).
      ::setpgid(0, 0);
      // A launcher that dies without passing a signal on still stops its ranks cleanly.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(143);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      ::execve(self, argv.data(), envp.data());
      _exit(127);
    }
    pids.push_back(pid);
  }

  using Clock = std::chrono::steady_clock;
  int result = 0;
  bool failed = false;
  int forwarded = 0;
  Clock::time_point kill_at = Clock::time_point::max();
  std::vector<bool> alive(pids.size(), true);
  size_t running = pids.size();
  while (running > 0) {
    if (g_signal_count > forwarded) {
      forwarded = g_signal_count;
      for (size_t i = 0; i < pids.size(); ++i)
        if (alive[i]) ::kill(pids[i], g_signal);
    }
    if (Clock::now() >= kill_at) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (alive[i]) ::kill(pids[i], SIGKILL);
      kill_at = Clock::time_point::max();
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] != pid || !alive[i]) continue;
      alive[i] = false;
      --running;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code == 0 || failed) break;
      failed = true;
      result = code;
      // After a signal we passed on, 128 + signal is every rank's orderly exit.
      if (g_signal_count > 0 && code == 128 + g_signal) break;
      // Otherwise the first failure is the run's result, and the other ranks would wait for
      // the failed one inside a collective: stop them, and kill them if that does not end them.
      for (size_t j = 0; j < pids.size(); ++j)
        if (alive[j]) ::kill(pids[j], SIGTERM);
      kill_at = Clock::now() + std::chrono::seconds(30);
    }
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return result;
}

}  // namespace stoch::cli
