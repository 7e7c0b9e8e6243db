// SIGINT/SIGTERM as a request: the loop finishes its step, checkpoints it, and exits 130/143.
#pragma once

namespace stoch {

void install_stop_handlers();
// The signal number received (SIGINT or SIGTERM), or 0.
int stop_requested();
// Exit code for a stop signal: 128 + signal number.
inline int exit_code_for_signal(int sig) {
  return 128 + sig;
}

}  // namespace stoch
