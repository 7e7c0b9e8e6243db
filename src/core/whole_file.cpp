#include "core/whole_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>

#include "core/strings.h"

namespace stoch {

void write_file_durably(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(stoch::str(path, ": cannot open for writing: ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw std::runtime_error(stoch::str(path, ": write failed: ", std::strerror(e)));
    }
    done += static_cast<size_t>(w);
  }
  // The descriptor is closed whether or not fsync succeeds.
  const int synced = ::fsync(fd) == 0 ? 0 : errno;
  const int closed = ::close(fd) == 0 ? 0 : errno;
  if (synced || closed)
    throw std::runtime_error(stoch::str(path, ": ", synced ? "fsync" : "close",
                                        " failed: ", std::strerror(synced ? synced : closed)));
}

void replace_file_durably(const std::string& path, const std::string& bytes) {
  replace_files_durably({{path, bytes}});
}

void replace_files_durably(const std::vector<std::pair<std::string, std::string_view>>& files) {
  const std::string tag = stoch::str(".tmp.", ::getpid());
  try {
    for (const auto& [path, bytes] : files) write_file_durably(path + tag, bytes);
    for (const auto& [path, bytes] : files) std::filesystem::rename(path + tag, path);
  } catch (...) {
    std::error_code ignored;
    for (const auto& [path, bytes] : files) std::filesystem::remove(path + tag, ignored);
    throw;
  }
  std::set<std::string> dirs;  // vocab.json and merges.txt share theirs: one fsync
  for (const auto& [path, bytes] : files) dirs.insert(std::filesystem::path(path).parent_path());
  for (const auto& dir : dirs) fsync_dir(dir);
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && (err == EIO || err == ENOSPC || err == EDQUOT))
    throw std::runtime_error(str(dir.empty() ? "." : dir, ": fsync failed: ", std::strerror(err)));
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return out;
}

void copy_file_durably(const std::string& from, const std::string& to) {
  const auto bytes = read_whole_file(from);
  if (!bytes) throw std::runtime_error(from + ": cannot read to copy it to " + to);
  write_file_durably(to, *bytes);
}

}  // namespace stoch
