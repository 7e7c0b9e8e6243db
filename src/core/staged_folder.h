// A folder that appears whole or not at all: written as OUT.tmp-PID beside its name, then
// renamed onto it. `stoch export` and `stoch data prepare` publish their output this way, so a
// crash or a full disk never leaves half a folder under the name a reader opens.
#pragma once

#include <string>

namespace stoch {

class StagedFolder {
 public:
  // Throws InputError "`label`: exists and is not an empty folder" unless `out` is absent or an
  // empty folder (not the current directory or a mount point), the only kinds commit() can
  // replace. For commands to call before their work.
  static void check_target(const std::string& out, const std::string& label);

  // Creates the staging folder for `out` ("DIR/" names DIR; it must pass check_target), replacing a
  // leftover of this pid's and removing those of processes that no longer exist. Throws
  // InputError "`label`: cannot create the folder (...)".
  StagedFolder(const std::string& out, const std::string& label);
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  // Removes the staging folder unless committed.
  ~StagedFolder();

  const std::string& path() const { return path_; }
  // Makes the staging folder's entries durable, renames it onto `out` (an empty folder there is
  // replaced atomically) and fsyncs `out`'s parent, so the new name survives power loss.
  void commit();

 private:
  void remove_dead_stages() const;
  std::string out_, label_, path_;
  bool committed_ = false;
};

}  // namespace stoch
