// Range checks for command-line options whose failures read like the config's: "--top-k:
// expected an integer >= 0, got "-2"" (CLI11's own print the whole double range instead).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>

namespace stoch::cli {

CLI::Validator integer_in(int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max());
// With `above_lo`, lo itself is refused: "(0, 0.5]".
CLI::Validator number_in(double lo, double hi = std::numeric_limits<double>::infinity(),
                         bool above_lo = false);

}  // namespace stoch::cli
