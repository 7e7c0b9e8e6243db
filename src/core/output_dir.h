// Creating the folders a command writes into (run, sweep, token and comparison folders).
#pragma once

#include <string>

namespace stoch {

// Creates `dir` and its parents; an InputError naming `option` and the reason when that is not
// possible (a file in the way, a read-only or virtual file system), so a bad --out or --run-dir
// exits 2 with one line instead of failing as a run.
void make_output_dir(const std::string& dir, const std::string& option);

}  // namespace stoch
