#include "core/staged_folder.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include <filesystem>
#include <system_error>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace fs = std::filesystem;

namespace stoch {
namespace {

// "DIR/" and "DIR/." name DIR, so that the staging folder goes beside it, not inside.
std::string folder_name(const std::string& out) {
  fs::path p = fs::path(out).lexically_normal();
  while (!p.has_filename() && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  return p.string();
}

}  // namespace

void StagedFolder::check_target(const std::string& out, const std::string& label) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw InputError(str(label, ": exists and is not an empty folder"));
  // The finished folder is renamed onto an empty one, which the kernel refuses (EBUSY) for the
  // current directory and a mount point: say so now, not after the work.
  struct stat here {
  }, parent{};
  const std::string name = folder_name(out);
  const bool mount = ::stat(name.c_str(), &here) == 0 &&
                     ::stat((name + "/..").c_str(), &parent) == 0 &&
                     (here.st_dev != parent.st_dev || here.st_ino == parent.st_ino);
  if (mount || fs::equivalent(name, fs::current_path(ec), ec))
    throw InputError(str(label, ": is ", mount ? "a mount point" : "the current directory",
                         ", which the finished folder cannot replace; name a new folder in it"));
}

StagedFolder::StagedFolder(const std::string& out, const std::string& label)
    : out_(folder_name(out)), label_(label), path_(str(out_, ".tmp-", ::getpid())) {
  std::error_code ec;
  fs::remove_all(path_, ec);
  remove_dead_stages();
  fs::create_directories(path_, ec);
  if (ec || !fs::is_directory(path_))
    throw InputError(
        str(label_, ": cannot create the folder (", ec ? ec.message() : "not a directory", ")"));
}

// Staging folders of this target left by processes that no longer exist (killed part way: a
// signal skips the destructor) are garbage; a live process's are its own.
void StagedFolder::remove_dead_stages() const {
  const fs::path target(out_);
  const std::string prefix = target.filename().string() + ".tmp-";
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
        name.size() > prefix.size() + 9)
      continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    std::error_code ignored;
    if (::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(it->path(), ignored);
  }
}

StagedFolder::~StagedFolder() {
  std::error_code ec;
  if (!committed_) fs::remove_all(path_, ec);
}

void StagedFolder::commit() {
  fsync_dir(path_);
  std::error_code ec;
  fs::rename(path_, out_, ec);
  if (ec) throw InputError(str(label_, ": cannot create the folder (", ec.message(), ")"));
  committed_ = true;
  fsync_dir(fs::path(out_).parent_path().string());
}

}  // namespace stoch
