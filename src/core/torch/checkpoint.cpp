#include "core/torch/checkpoint.h"

#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/checkpoint_manifest.h"
#include "core/crc32c.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace fs = std::filesystem;

namespace stoch {
namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string run_dir) : dir_(std::move(run_dir) + "/checkpoints") {}

std::string CheckpointStore::folder(int64_t step) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return dir_ + "/" + buf;
}

std::string CheckpointStore::staging(int64_t step) const {
  return stoch::str(dir_, "/.tmp-", fs::path(folder(step)).filename().string());
}

std::string CheckpointStore::prepare(int64_t step) const {
  fs::create_directories(dir_);
  // Temporary folders left by a killed writer are garbage: only one run writes a run dir.
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
  const std::string tmp = staging(step);
  fs::create_directories(tmp);
  return tmp;
}

std::string CheckpointStore::save(const Checkpoint& ckpt, int keep_last, int64_t keep_every,
                                  const std::vector<std::string>& staged) {
  const std::string final_dir = folder(ckpt.step);
  const std::string tmp = staging(ckpt.step);
  try {
    if (staged.empty()) prepare(ckpt.step);
    CheckpointManifest manifest{kFormatVersion, ckpt.step, TORCH_VERSION, {}};
    const auto record = [&](const std::string& name) {
      const std::string p = tmp + "/" + name;
      manifest.files.push_back({name, fs::file_size(p), hex32(crc32c_file(p))});
    };
    for (const auto& [stem, tensors] : ckpt.tensors) {
      write_safetensors(tmp + "/" + stem + ".safetensors", tensors);
      record(stem + ".safetensors");
    }
    for (const auto& name : staged) record(name);
    write_file_durably(tmp + "/state.json", ckpt.state.dump(2) + "\n");
    record("state.json");
    write_file_durably(tmp + "/manifest.json", manifest_json(manifest).dump(2) + "\n");
    fsync_dir(tmp);

    // A checkpoint of this step may exist already (a resumed run re-saving its start step).
    if (fs::exists(final_dir)) {
      const std::string old = tmp + ".old";
      fs::rename(final_dir, old);
      fs::rename(tmp, final_dir);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, final_dir);
    }
    fsync_dir(dir_);
  } catch (const std::exception& e) {
    // A full disk or a file system gone read-only: drop the partial folder and say how full it
    // is. The earlier checkpoints were never touched.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw std::runtime_error(
        stoch::str(e.what(), " (", free_space_note(dir_), "; earlier checkpoints are intact)"));
  }

  // Folders past this step belong to a course the run left: damaged ones its resume skipped, or
  // the diverged ones a rollback went back before. Kept, they would count as the newest for
  // keep_last (which then deleted the folder just written) and for the next resume.
  std::vector<int64_t> older;
  for (const int64_t s : steps()) {
    if (s < ckpt.step) older.push_back(s);
    if (s <= ckpt.step) continue;
    log::warn(stoch::str("removing ", folder(s), ": newer than the checkpoint just written, from ",
                         "a course the run left (damaged, or rolled back)"));
    discard(s);
  }
  if (keep_last > 0)
    for (size_t i = 0; i + keep_last < older.size() + 1; ++i)
      if (keep_every == 0 || older[i] % keep_every != 0) discard(older[i]);
  return final_dir;
}

// Renamed out of the steps' names first: a kill part way through the removal leaves a staging
// folder (which the next prepare() removes), never a half-deleted one named like a checkpoint.
void CheckpointStore::discard(int64_t step) const {
  const std::string gone =
      stoch::str(dir_, "/.tmp-gone-", fs::path(folder(step)).filename().string());
  fs::rename(folder(step), gone);
  fs::remove_all(gone);
}

std::vector<int64_t> CheckpointStore::steps() const {
  std::vector<int64_t> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    // step-%08lld: eight digits, more past 10^8 steps.
    if (name.size() < 13 || name.size() > 24 || name.rfind("step-", 0) != 0 ||
        !std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !e.is_directory())
      continue;
    try {
      out.push_back(std::stoll(name.substr(5)));
    } catch (const std::exception&) {
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Checkpoint CheckpointStore::load(int64_t step) const {
  return load(step, true);
}

Checkpoint CheckpointStore::load(int64_t step, bool with_tensors) const {
  Checkpoint c;
  c.step = step;
  c.dir = folder(step);
  const std::string mpath = c.dir + "/manifest.json";
  const auto manifest_text = read_whole_file(mpath);
  if (!manifest_text) {
    std::error_code ec;
    if (fs::exists(mpath, ec)) crc32c_file(mpath);  // throws ReadError naming why
    throw InputError(stoch::str(mpath, ": missing (checkpoint incomplete)"));
  }
  const CheckpointManifest manifest =
      parse_checkpoint_manifest(*manifest_text, mpath, kFormatVersion, step);
  std::set<std::string> listed;
  for (const auto& f : manifest.files) {
    listed.insert(f.name);
    if (!with_tensors && f.name != "state.json") continue;
    const std::string p = c.dir + "/" + f.name;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) throw InputError(stoch::str(p, ": missing"));
    if (fs::file_size(p) != f.bytes)
      throw InputError(stoch::str(p, ": size differs from the manifest (truncated or damaged)"));
    if (hex32(crc32c_file(p)) != f.crc32c)
      throw InputError(stoch::str(p, ": checksum mismatch (damaged)"));
  }
  // Every checkpoint stoch writes holds these; one that lacks them is damaged, not a checkpoint.
  for (const char* name : {"state.json", "model.safetensors", "rng.safetensors"})
    if (!listed.count(name)) throw InputError(stoch::str(mpath, ": lists no ", name));
  const std::string suffix = ".safetensors";
  if (with_tensors)
    for (const auto& f : manifest.files) {
      const std::string& name = f.name;
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        c.tensors[name.substr(0, name.size() - suffix.size())] =
            read_safetensors(c.dir + "/" + name);
    }
  const std::string spath = c.dir + "/state.json";
  const auto state_text = read_whole_file(spath);
  if (!state_text) throw InputError(stoch::str(spath, ": cannot read"));
  c.state = parse_checkpoint_state(*state_text, spath, step);
  return c;
}

std::optional<Checkpoint> CheckpointStore::load_latest(int64_t before) const {
  return load_latest(before, true);
}

std::optional<Checkpoint> CheckpointStore::load_latest_state() const {
  return load_latest(std::numeric_limits<int64_t>::max(), false);
}

std::optional<Checkpoint> CheckpointStore::load_latest(int64_t before, bool with_tensors) const {
  auto all = steps();
  std::string newest_damage;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (*it >= before) continue;
    try {
      return load(*it, with_tensors);
    } catch (const ReadError&) {
      // Not damage: an older checkpoint would start the run over part of its course, and the
      // next checkpoint written would remove this intact one as "newer".
      throw;
    } catch (const InputError& e) {
      log::warn(stoch::str("skipping damaged checkpoint: ", e.what()));
      if (newest_damage.empty()) newest_damage = e.what();
    }
  }
  // Checkpoints, but none that verifies: starting from step 0 would remove them all at the
  // first checkpoint written. Left for the user to look at.
  if (!newest_damage.empty())
    throw InputError(stoch::str(dir_, ": no checkpoint verifies (the newest: ", newest_damage,
                                "); nothing was changed: move the folder aside and train anew "
                                "to start over"));
  return std::nullopt;
}

}  // namespace stoch
