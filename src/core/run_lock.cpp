#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "core/log.h"

namespace stoch {
namespace {

std::string read_all(int fd) {
  std::string text;
  char buf[256];
  ssize_t n;
  if (::lseek(fd, 0, SEEK_SET) != 0) return text;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown host";
  return name;
}

// "pid 123 on host, since 2026-12-03 11:20:05 UTC"
std::string owner_line() {
  const std::time_t now = std::time(nullptr);
  char when[64];
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return "pid " + std::to_string(::getpid()) + " on " + host_name() + ", since " + when;
}

// The descriptor that kHandoverEnv names when it is an open descriptor of `path` itself (the
// same file), else -1: a stale or foreign value is ignored, never trusted.
int handed_over(const std::string& path) {
  const char* value = std::getenv(RunLock::kHandoverEnv);
  if (value == nullptr || *value == '\0') return -1;
  char* end = nullptr;
  errno = 0;
  const long fd = std::strtol(value, &end, 10);
  if (errno != 0 || *end != '\0' || fd < 0 || fd > INT_MAX) return -1;
  struct stat held {};
  struct stat file {};
  if (::fstat(static_cast<int>(fd), &held) != 0 || ::stat(path.c_str(), &file) != 0) return -1;
  return held.st_dev == file.st_dev && held.st_ino == file.st_ino ? static_cast<int>(fd) : -1;
}

}  // namespace

RunLock::RunLock(const std::string& dir) : RunLock(dir, nullptr) {}

std::unique_ptr<RunLock> RunLock::try_take(const std::string& dir, std::string& owner) {
  owner.clear();
  std::unique_ptr<RunLock> lock(new RunLock(dir, &owner));
  return lock->fd_ >= 0 ? std::move(lock) : nullptr;
}

RunLock::RunLock(const std::string& dir, std::string* owner) {
  const std::string path = dir + "/.lock";
  const int inherited = handed_over(path);
  if (inherited >= 0) {
    fd_ = inherited;  // the lock's open file: flock below succeeds at once
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
  } else {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd_ < 0)
    throw InputError(path + ": cannot open the run's lock file (" + std::strerror(errno) + ")");
  // run_lock_owner holds the lock for a moment while it looks: a few tries tell that apart from
  // an owner, which holds it for the whole run.
  int err = 0;
  for (int attempt = 0; attempt < 25; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    err = ::flock(fd_, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    if (err != EWOULDBLOCK) break;
  }
  if (err == EWOULDBLOCK) {
    const std::string line = read_all(fd_);
    ::close(fd_);
    fd_ = -1;
    if (owner != nullptr) {
      *owner = line;
      return;
    }
    throw InputError(dir + ": another stoch process is writing this run (" +
                     (line.empty() ? "owner unknown" : line) +
                     "); wait for it to finish or stop it, then resume");
  }
  if (err != 0) {
    log::warn(path + ": no advisory locks on this file system (" + std::strerror(err) +
              "); nothing stops a second process from writing this run");
    return;
  }
  locked_ = true;
  const std::string line = owner_line() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, line.data(), line.size(), 0) < 0)
    log::warn(path + ": cannot record the lock's owner (" + std::strerror(errno) + ")");
}

RunLock::Handover::Handover(int fd)
    : fd_(fd), env_(fd < 0 ? "" : std::string(kHandoverEnv) + "=" + std::to_string(fd)) {}

RunLock::Handover::~Handover() {
  if (fd_ >= 0) ::close(fd_);
}

RunLock::Handover RunLock::hand_over() const {
  if (!locked_) return Handover(-1);
  const int fd = ::fcntl(fd_, F_DUPFD, 3);  // F_DUPFD leaves close-on-exec off
  if (fd < 0) throw std::runtime_error(std::string("dup: ") + std::strerror(errno));
  return Handover(fd);
}

std::optional<std::string> run_lock_owner(const std::string& dir) {
  const int fd = ::open((dir + "/.lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> owner;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) owner = read_all(fd);
  ::close(fd);  // releases the probe's own lock, if it got one
  return owner;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

}  // namespace stoch
