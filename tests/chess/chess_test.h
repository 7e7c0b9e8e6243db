// Shared by the chess tests.
#pragma once

#include <string>

#include "core/errors.h"
#include "data/chess/uci_engine.h"

namespace stoch::test {

// Why Stockfish cannot be used here, or "" when it can (for STOCH_REQUIRE).
inline std::string stockfish_missing() {
  try {
    chess::find_stockfish();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace stoch::test
