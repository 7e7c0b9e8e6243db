// What is left on a file system, for the messages of writes that fail (a full disk says how
// full). No LibTorch here.
#pragma once

#include <string>

namespace stoch {

// "12.5 KiB free on its file system" for the file system holding `path` (or its nearest
// existing parent); "free space unknown" when that cannot be read.
std::string free_space_note(const std::string& path);

}  // namespace stoch
