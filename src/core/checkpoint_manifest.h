// The two JSON files of a checkpoint folder (core/torch/checkpoint.h): manifest.json, which
// lists every file with its size and CRC-32C, and state.json, the loop's record. Parsed and
// checked here, without LibTorch, before any file they name is opened.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace stoch {

struct ManifestFile {
  std::string name;  // a plain file name inside the folder
  uint64_t bytes = 0;
  std::string crc32c;  // 8 lowercase hex digits
};

struct CheckpointManifest {
  int64_t format_version = 0;
  int64_t step = 0;
  std::string libtorch;  // the version that wrote it, for the reader's information
  std::vector<ManifestFile> files;
};

nlohmann::json manifest_json(const CheckpointManifest& m);

// Throws InputError naming `path` when the text is not a manifest of a format version up to
// `newest_version` for checkpoint `step`, or names a file outside its folder.
CheckpointManifest parse_checkpoint_manifest(const std::string& text, const std::string& path,
                                             int64_t newest_version, int64_t step);

// state.json as a JSON object whose loop keys (step, data cursor, counters, clocks) have the
// types and ranges the training loop reads them with, and whose "step" is `step`. Throws
// InputError naming `path` and the key otherwise.
nlohmann::json parse_checkpoint_state(const std::string& text, const std::string& path,
                                      int64_t step);

}  // namespace stoch
