// Checkpoint folders: RUN_DIR/checkpoints/step-00000100/ holding named safetensors files,
// state.json, and manifest.json (format version, LibTorch version, a CRC-32C per file).
// A folder is written under a temporary name, fsynced, then renamed: a crash at any moment
// leaves every earlier checkpoint intact, and a folder with the final name is complete.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/torch/safetensors.h"

namespace stoch {

struct Checkpoint {
  int64_t step = 0;
  std::string dir;
  std::map<std::string, TensorList> tensors;  // file stem -> tensors ("model", "optimizer", ...)
  nlohmann::json state;                       // training state, RNG positions, data cursor
};

class CheckpointStore {
 public:
  static constexpr int kFormatVersion = 1;

  explicit CheckpointStore(std::string run_dir);

  // Writes the checkpoint of `ckpt.step` atomically, then removes any folder of a later step
  // (left by a course the run abandoned) and the oldest ones beyond `keep_last` (0 keeps all),
  // counting the new one, except those whose step is a multiple of `keep_every` (0: no such
  // exception). Returns the folder. `staged` names files that other processes (the ranks
  // of a sharded run) already wrote durably into staging(step), after prepare(step): they are
  // checksummed into the manifest with the rest.
  std::string save(const Checkpoint& ckpt, int keep_last, int64_t keep_every = 0,
                   const std::vector<std::string>& staged = {});

  // The folder a checkpoint of `step` is written in before it is renamed; prepare() empties
  // it and removes what killed writers left.
  std::string staging(int64_t step) const;
  std::string prepare(int64_t step) const;

  // Steps with a final-named folder, ascending (not yet verified).
  std::vector<int64_t> steps() const;

  // Loads and verifies one step; throws InputError describing the damage.
  Checkpoint load(int64_t step) const;

  // Newest checkpoint that verifies, of a step before `before`; damaged ones are reported
  // (log::warn) and skipped. Nothing when there is none.
  std::optional<Checkpoint> load_latest(int64_t before = std::numeric_limits<int64_t>::max()) const;

  // The newest checkpoint whose manifest and state.json verify, without its tensors (neither
  // read nor checksummed): for checks that need only the saved state.
  std::optional<Checkpoint> load_latest_state() const;

  std::string folder(int64_t step) const;
  const std::string& dir() const { return dir_; }

 private:
  Checkpoint load(int64_t step, bool with_tensors) const;
  void discard(int64_t step) const;
  std::optional<Checkpoint> load_latest(int64_t before, bool with_tensors) const;
  std::string dir_;
};

}  // namespace stoch
