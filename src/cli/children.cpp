#include "cli/children.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/strings.h"

extern char** environ;

namespace stoch::cli {
namespace {

volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_count = 0;
bool g_exists = false;

void on_signal(int sig) {
  g_signal = sig;
  g_count = g_count + 1;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string this_executable() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw std::runtime_error("cannot find this executable (/proc/self/exe)");
  return std::string(self, static_cast<size_t>(n));
}

Children::Children() {
  if (g_exists) throw std::logic_error("Children: one set of children at a time");
  g_exists = true;
  g_signal = 0;
  g_count = 0;
  // Before the first fork, so a signal in between is not lost.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // An ignored SIGCHLD, inherited (a script's `trap '' CHLD`), lets the kernel reap the children
  // unread: their exit codes were lost, and a sweep reported all runs finished after one.
  std::signal(SIGCHLD, SIG_DFL);
}

Children::~Children() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  g_exists = false;
}

pid_t Children::start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const std::string& output, const std::string& program) {
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls are allowed in a process with threads.
  std::vector<std::string> argv_s = argv;
  std::vector<std::string> env_s = env;
  if (env_s.empty())
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  auto args = pointers(argv_s), envp = pointers(env_s);
  const std::string path = program.empty() ? argv_s.at(0) : program;
  int fd = -1;
  if (!output.empty()) {
    fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      throw std::runtime_error(stoch::str("cannot open ", output, ": ", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  // A stop signal between fork and the child's reset of its handlers would run the parent's
  // handler in the child, which then went on to train as if never told. Blocked across the fork,
  // it stays pending: the child takes it with the default action once reset, and the parent
  // forwards it as usual.
  sigset_t stops, before;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stops, &before);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(stoch::str("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (::getppid() != parent) _exit(143);  // the parent died before prctl
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execve(path.c_str(), args.data(), envp.data());
    _exit(127);
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  // Also here, so the child is out of the terminal's group before anything else can happen.
  ::setpgid(pid, pid);
  if (fd >= 0) ::close(fd);
  pids_.insert(pid);
  return pid;
}

int Children::signal() const {
  return g_count > 0 ? static_cast<int>(g_signal) : 0;
}

void Children::forward_signals() {
  const int count = g_count;
  if (count == forwarded_) return;
  forwarded_ = count;
  send_all(g_signal);
}

void Children::send_all(int sig) {
  for (const pid_t p : pids_) ::kill(p, sig);
}

std::optional<Children::Exit> Children::wait(std::chrono::milliseconds wait) {
  const auto end = std::chrono::steady_clock::now() + wait;
  for (;;) {
    forward_signals();
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && pids_.erase(pid))
      return Exit{pid, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                  WIFSIGNALED(status) != 0};
    if (pid < 0 && errno == ECHILD)
      throw std::runtime_error(stoch::str("children: ", pids_.size(),
                                          " started processes were reaped elsewhere; their exit "
                                          "codes are lost"));
    if (pid <= 0 && std::chrono::steady_clock::now() >= end) return std::nullopt;
    if (pid <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace stoch::cli
