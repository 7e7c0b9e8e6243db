#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

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

}  // namespace

RunLock::RunLock(const std::string& dir) {
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw InputError(path + ": cannot open the run's lock file (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      const std::string owner = read_all(fd_);
      ::close(fd_);
      fd_ = -1;
      throw InputError(dir + ": another stoch process is writing this run (" +
                       (owner.empty() ? "owner unknown" : owner) +
                       "); wait for it to finish or stop it, then resume");
    }
    log::warn(path + ": no advisory locks on this file system (" + std::strerror(err) +
              "); nothing stops a second process from writing this run");
    return;
  }
  const std::string line = owner_line() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, line.data(), line.size(), 0) < 0)
    log::warn(path + ": cannot record the lock's owner (" + std::strerror(errno) + ")");
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
