// Error kinds that decide the exit code. Everything else that escapes is a run failure (exit 1).
#pragma once

#include <stdexcept>
#include <string>

namespace stoch {

// Bad usage or bad input (config, data file, checkpoint, command line): exit 2, one line.
// The message names the file, key or line and what was expected.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file that exists but cannot be read (permissions, an I/O error): bad input too, but not
// damage, so a checkpoint that raises it is not skipped for an older one.
struct ReadError : InputError {
  using InputError::InputError;
};

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitSigint = 130;
constexpr int kExitSigterm = 143;

}  // namespace stoch
