// What is left on a file system, for the messages of writes that fail (a full disk says how
// full). No LibTorch here.
#pragma once

#include <functional>
#include <string>

namespace stoch {

// "12.5 KiB free on its file system" for the file system holding `path` (or its nearest
// existing parent); "free space unknown" when that cannot be read.
std::string free_space_note(const std::string& path);

// "PATH: WHAT failed: REASON (N free on its file system)" for a write to `path` that failed
// with errno `err`: the one-line message of every writer that fails on a full disk.
std::string failed_write_message(const std::string& path, const char* what, int err);

// Runs `write`; what it throws comes back as std::runtime_error with the free space of `path`'s
// file system added, so a failed write says whether the disk was full. An InputError passes
// through as it is.
void noting_free_space(const std::string& path, const std::function<void()>& write);

}  // namespace stoch
