// Liveness of the ranks of a data-parallel run, through the rendezvous store (c10d's TCPStore,
// on its own connection). Every rank but 0 bumps a heartbeat key several times per timeout from
// a thread of its own, so a rank that is busy (rank 0 evaluating or writing a checkpoint while
// the others wait in a collective) still counts as alive. Rank 0 watches the heartbeats; a rank
// silent for `timeout` (killed, stopped, cut off) makes it publish one line naming that rank
// and its host and exit 1, and every other rank reads the line and exits 1 too. A rank that
// cannot reach the store (rank 0 gone, stopped, or its network down) exits 1 naming rank 0.
// Exits are immediate (_Exit): a rank waiting inside a collective cannot be unwound, and the
// checkpoint protocol (write aside, rename when complete) leaves nothing half-written that
// could pass for complete.
#pragma once

#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class Store;
}

namespace stoch::train {

class Watchdog {
 public:
  // `who[r]` describes rank r for messages ("rank 1 on host-b, pid 42"). Starts the thread;
  // every rank's heartbeat key must already exist (set during the rendezvous).
  Watchdog(c10::intrusive_ptr<c10d::Store> store, int64_t rank, std::vector<std::string> who,
           std::chrono::milliseconds timeout);
  // A normal end (no exception in flight) tells the others this rank is done, so its silence
  // is not a loss; an end by exception tells them this rank failed, so they stop at once.
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // A collective failed (a peer's connection closed): give the watchdog time to name the rank
  // that was lost, then throw with `what` if it has not ended the process.
  [[noreturn]] void collective_failed(const std::string& what);

  static std::string heartbeat_key(int64_t rank);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with its threads, which may outlive a blocked exit
};

}  // namespace stoch::train
