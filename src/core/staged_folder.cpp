#include "core/staged_folder.h"

#include <unistd.h>

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
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw InputError(str(label, ": exists and is not an empty folder"));
}

StagedFolder::StagedFolder(const std::string& out, const std::string& label)
    : out_(folder_name(out)), label_(label), path_(str(out_, ".tmp-", ::getpid())) {
  std::error_code ec;
  fs::remove_all(path_, ec);
  fs::create_directories(path_, ec);
  if (ec || !fs::is_directory(path_))
    throw InputError(
        str(label_, ": cannot create the folder (", ec ? ec.message() : "not a directory", ")"));
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
