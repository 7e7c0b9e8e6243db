#include "core/torch/checkpoint.h"

#include <fcntl.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/crc32c.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch {
namespace {

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

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
    nlohmann::json files = nlohmann::json::object();
    const auto record = [&](const std::string& name) {
      const std::string p = tmp + "/" + name;
      files[name] = {{"bytes", fs::file_size(p)}, {"crc32c", hex32(crc32c_file(p))}};
    };
    for (const auto& [stem, tensors] : ckpt.tensors) {
      write_safetensors(tmp + "/" + stem + ".safetensors", tensors);
      record(stem + ".safetensors");
    }
    for (const auto& name : staged) record(name);
    write_file_durably(tmp + "/state.json", ckpt.state.dump(2) + "\n");
    record("state.json");
    const nlohmann::json manifest = {{"format", "stoch-checkpoint"},
                                     {"format_version", kFormatVersion},
                                     {"libtorch", TORCH_VERSION},
                                     {"step", ckpt.step},
                                     {"files", files}};
    write_file_durably(tmp + "/manifest.json", manifest.dump(2) + "\n");
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

  if (keep_last > 0) {
    auto all = steps();
    for (size_t i = 0; i + keep_last < all.size(); ++i)
      if (keep_every == 0 || all[i] % keep_every != 0) fs::remove_all(folder(all[i]));
  }
  return final_dir;
}

std::vector<int64_t> CheckpointStore::steps() const {
  std::vector<int64_t> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 13 || name.rfind("step-", 0) != 0 || !e.is_directory()) continue;
    try {
      out.push_back(std::stoll(name.substr(5)));
    } catch (const std::exception&) {
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Checkpoint CheckpointStore::load(int64_t step) const {
  Checkpoint c;
  c.step = step;
  c.dir = folder(step);
  const std::string mpath = c.dir + "/manifest.json";
  std::ifstream min(mpath);
  if (!min) throw InputError(stoch::str(mpath, ": missing (checkpoint incomplete)"));
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(min);
  } catch (const std::exception& e) {
    throw InputError(stoch::str(mpath, ": unreadable manifest: ", e.what()));
  }
  if (manifest.value("format", "") != "stoch-checkpoint")
    throw InputError(stoch::str(mpath, ": not a stoch checkpoint manifest"));
  if (manifest.value("format_version", 0) > kFormatVersion)
    throw InputError(stoch::str(mpath, ": format_version ", manifest.value("format_version", 0),
                                " is newer than this stoch understands (", kFormatVersion, ")"));
  for (const auto& [name, info] : manifest.at("files").items()) {
    const std::string p = c.dir + "/" + name;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) throw InputError(stoch::str(p, ": missing"));
    if (fs::file_size(p) != info.at("bytes").get<uint64_t>())
      throw InputError(stoch::str(p, ": size differs from the manifest (truncated or damaged)"));
    if (hex32(crc32c_file(p)) != info.at("crc32c").get<std::string>())
      throw InputError(stoch::str(p, ": checksum mismatch (damaged)"));
  }
  for (const auto& [name, info] : manifest.at("files").items()) {
    (void)info;
    const std::string p = c.dir + "/" + name;
    const std::string suffix = ".safetensors";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      c.tensors[name.substr(0, name.size() - suffix.size())] = read_safetensors(p);
    }
  }
  std::ifstream sin(c.dir + "/state.json");
  try {
    c.state = nlohmann::json::parse(sin);
  } catch (const std::exception& e) {
    throw InputError(stoch::str(c.dir, "/state.json: unreadable: ", e.what()));
  }
  return c;
}

std::optional<Checkpoint> CheckpointStore::load_latest() const {
  auto all = steps();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return load(*it);
    } catch (const InputError& e) {
      log::warn(stoch::str("skipping damaged checkpoint: ", e.what()));
    }
  }
  return std::nullopt;
}

}  // namespace stoch
