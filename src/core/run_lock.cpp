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
// same file or folder), else -1: a stale or foreign value is ignored, never trusted.
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

// flock with a few tries: run_lock_owner holds a lock for a moment while it looks, which these
// tell apart from an owner, who holds it for the whole run. 0 or the last errno.
int lock_with_retries(int fd) {
  int err = 0;
  for (int attempt = 0; attempt < 25; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    err = ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    if (err != EWOULDBLOCK) break;
  }
  return err;
}

// The owner line kept in the lock file, "" when it is missing or empty.
std::string owner_in(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string line = read_all(fd);
  ::close(fd);
  return line;
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
  // The folder itself is locked, so removing .lock (by hand, or a clean-up of stray files) cannot
  // free a live run; .lock only keeps the owner's line. Where folders cannot be locked (NFS
  // emulates flock with fcntl locks, which need a file open for writing) .lock itself is.
  int err = 0;
  fd_ = handed_over(dir);
  if (fd_ < 0 && (fd_ = handed_over(path)) >= 0) on_file_ = true;  // a parent that locked .lock
  if (fd_ >= 0) {
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);  // the lock's own descriptor: flock succeeds at once
    err = lock_with_retries(fd_);
  } else {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      throw InputError(dir + ": cannot open the run's folder to lock it (" + std::strerror(errno) +
                       ")");
    err = lock_with_retries(fd_);
    if (err != 0 && err != EWOULDBLOCK) {
      ::close(fd_);
      fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd_ < 0)
        throw InputError(path + ": cannot open the run's lock file (" + std::strerror(errno) + ")");
      on_file_ = true;
      err = lock_with_retries(fd_);
    }
  }
  if (err == EWOULDBLOCK) {
    const std::string line = owner_in(path);
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
  // Written before the old line is cut, so a reader never finds the file empty. Through the
  // lock's own descriptor where that is the file: closing another descriptor of it would drop
  // an fcntl-emulated lock.
  const std::string line = owner_line() + "\n";
  const int out = on_file_ ? fd_ : ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (out < 0 || ::pwrite(out, line.data(), line.size(), 0) < 0 ||
      ::ftruncate(out, static_cast<off_t>(line.size())) != 0)
    log::warn(path + ": cannot record the lock's owner (" + std::strerror(errno) + ")");
  if (out >= 0 && !on_file_) ::close(out);
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
  const std::string path = dir + "/.lock";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  int err = ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
  if (err != 0 && err != EWOULDBLOCK) {  // no locks on folders here: the owner locks .lock
    ::close(fd);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    err = ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
  }
  ::close(fd);  // releases the probe's own lock, if it got one
  if (err != EWOULDBLOCK) return std::nullopt;
  const std::string line = owner_in(path);
  return line.empty() ? "owner unknown" : line;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

}  // namespace stoch
