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
#include "core/strings.h"

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

// The descriptor among those kHandoverEnv names ("N" or "N,M") that is an open descriptor of
// `path` itself (the same file or folder), else -1: a stale or foreign value is ignored, never
// trusted.
int handed_over(const std::string& path) {
  const char* value = std::getenv(RunLock::kHandoverEnv);
  if (value == nullptr || *value == '\0') return -1;
  struct stat file {};
  if (::stat(path.c_str(), &file) != 0) return -1;
  for (const auto& item : split(value, ',')) {
    char* end = nullptr;
    errno = 0;
    const long fd = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || errno != 0 || *end != '\0' || fd < 0 || fd > INT_MAX) continue;
    struct stat held {};
    if (::fstat(static_cast<int>(fd), &held) == 0 && held.st_dev == file.st_dev &&
        held.st_ino == file.st_ino)
      return static_cast<int>(fd);
  }
  return -1;
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

// A probe of one lock: whether another open of it holds it (EWOULDBLOCK). `flags` for the file:
// NFS takes an exclusive lock only through a descriptor open for writing.
bool held_elsewhere(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 && (flags & O_RDWR)) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the probe's own lock, if it got one
  return held;
}

}  // namespace

RunLock::RunLock(const std::string& dir) : RunLock(dir, nullptr) {}

std::unique_ptr<RunLock> RunLock::try_take(const std::string& dir, std::string& owner) {
  owner.clear();
  std::unique_ptr<RunLock> lock(new RunLock(dir, &owner));
  return lock->busy_ ? nullptr : std::move(lock);
}

RunLock::RunLock(const std::string& dir, std::string* owner) {
  const std::string path = dir + "/.lock";
  // Two locks. The folder's: removing .lock (by hand, a clean-up of stray files) cannot free a
  // live run. .lock's: NFS keeps flock on a file across hosts (as fcntl locks on the server) but
  // a folder's only on the host that took it, and stoch before 2026-12-08 locked only .lock.
  // A lock handed over by the process that started this one is adopted: flock on its own
  // descriptor succeeds at once.
  dir_fd_ = handed_over(dir);
  if (dir_fd_ < 0) dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0)
    throw InputError(dir + ": cannot open the run's folder to lock it (" + std::strerror(errno) +
                     ")");
  ::fcntl(dir_fd_, F_SETFD, FD_CLOEXEC);
  const int dir_err = lock_with_retries(dir_fd_);
  int file_err = EWOULDBLOCK;
  if (dir_err != EWOULDBLOCK) {
    file_fd_ = handed_over(path);
    if (file_fd_ < 0) file_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (file_fd_ < 0)
      throw InputError(path + ": cannot open the run's lock file (" + std::strerror(errno) + ")");
    ::fcntl(file_fd_, F_SETFD, FD_CLOEXEC);
    file_err = lock_with_retries(file_fd_);
  }
  if (dir_err == EWOULDBLOCK || file_err == EWOULDBLOCK) {
    const std::string line = owner_in(path);
    release();
    busy_ = true;
    if (owner != nullptr) {
      *owner = line;
      return;
    }
    throw InputError(dir + ": another stoch process is writing this run (" +
                     (line.empty() ? "owner unknown" : line) +
                     "); wait for it to finish or stop it, then resume");
  }
  if (dir_err != 0 && file_err != 0) {
    log::warn(path + ": no advisory locks on this file system (" + std::strerror(file_err) +
              "); nothing stops a second process from writing this run");
    release();
    return;
  }
  // Written before the old line is cut, so a reader never finds the file empty; through the
  // locked descriptor, since closing another one of the file would drop an fcntl-emulated lock.
  const std::string line = owner_line() + "\n";
  if (::pwrite(file_fd_, line.data(), line.size(), 0) < 0 ||
      ::ftruncate(file_fd_, static_cast<off_t>(line.size())) != 0)
    log::warn(path + ": cannot record the lock's owner (" + std::strerror(errno) + ")");
}

void RunLock::release() {
  for (int* fd : {&dir_fd_, &file_fd_}) {
    if (*fd >= 0) ::close(*fd);  // closing the last descriptor releases its lock
    *fd = -1;
  }
}

RunLock::Handover::Handover(std::vector<int> fds) : fds_(std::move(fds)) {
  if (!fds_.empty()) env_ = std::string(kHandoverEnv) + "=" + join(fds_, ",");
}

RunLock::Handover::~Handover() {
  for (const int fd : fds_) ::close(fd);
}

RunLock::Handover RunLock::hand_over() const {
  std::vector<int> fds;
  for (const int fd : {dir_fd_, file_fd_}) {
    if (fd < 0) continue;
    const int copy = ::fcntl(fd, F_DUPFD, 3);  // F_DUPFD leaves close-on-exec off
    if (copy < 0) {
      for (const int f : fds) ::close(f);
      throw std::runtime_error(std::string("dup: ") + std::strerror(errno));
    }
    fds.push_back(copy);
  }
  return Handover(std::move(fds));
}

std::optional<std::string> run_lock_owner(const std::string& dir) {
  const std::string path = dir + "/.lock";
  if (!held_elsewhere(dir, O_RDONLY | O_DIRECTORY) && !held_elsewhere(path, O_RDWR))
    return std::nullopt;
  const std::string line = owner_in(path);
  return line.empty() ? "owner unknown" : line;
}

RunLock::~RunLock() {
  release();
}

}  // namespace stoch
