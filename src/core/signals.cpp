#include "core/signals.h"

#include <csignal>

namespace stoch {
namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_signal(int sig) {
  g_signal = sig;
  // A second signal of the same kind kills at once: the checkpoint in progress is written
  // atomically, so nothing is left half-done.
  std::signal(sig, SIG_DFL);
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

int stop_requested() {
  return g_signal;
}

}  // namespace stoch
