// Whole files: written so that they survive a crash or power loss once the call returns, and
// read in one go.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stoch {

// Writes `bytes` to `path` (created or truncated), fsyncs and closes it. Throws
// std::runtime_error naming the path and the system's reason when any step fails.
void write_file_durably(const std::string& path, std::string_view bytes);

// Replaces `path` with `bytes` so that a reader, or a crash, sees the old file or the new one
// whole: written durably to `path`.tmp.PID (its own per process, so concurrent writers do not
// share it), renamed over `path`, and the folder fsynced so the rename survives power loss. On
// failure the temporary file is removed and the error (std::runtime_error or
// std::filesystem::filesystem_error) rethrown.
void replace_file_durably(const std::string& path, const std::string& bytes);

// Copies `from` to `to` with write_file_durably. Throws std::runtime_error naming both when
// `from` cannot be read.
void copy_file_durably(const std::string& from, const std::string& to);

// replace_file_durably for files that belong together (a tokenizer's vocab.json and
// merges.txt): every one is written beside its name before any is renamed, so a failed write
// (a full disk) replaces none of them.
void replace_files_durably(const std::vector<std::pair<std::string, std::string_view>>& files);

// Makes the entries of folder `dir` (files created, renamed or removed in it) durable. A folder
// that cannot be opened, or whose file system does not sync folders (EINVAL), is left as it is;
// an I/O error or a full disk throws, since the entries may then not survive a crash.
void fsync_dir(const std::string& dir);

// The whole content of `path`, or nothing when it cannot be opened or read to its end. Callers
// say what a missing file means for them.
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace stoch
