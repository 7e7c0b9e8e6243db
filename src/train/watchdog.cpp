#include "train/watchdog.h"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"

namespace stoch::train {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::string kAbortKey = "abort";

std::string done_key(int64_t rank) {
  return stoch::str("done/", rank);
}

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

[[noreturn]] void end_run(const std::string& line) {
  log::error(line);
  std::_Exit(kExitFailure);
}

}  // namespace

std::string Watchdog::heartbeat_key(int64_t rank) {
  return stoch::str("heartbeat/", rank);
}

struct Watchdog::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  int64_t rank;
  std::vector<std::string> who;
  milliseconds timeout;
  // Several looks per timeout; a loss is declared after `silence` so that the exit, a look
  // later, still comes within the timeout.
  milliseconds period;
  milliseconds silence;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::thread thread;
  // Ranks other than 0: when the store last answered. A store call to a stopped rank 0 can
  // block for good, so a second thread measures the silence.
  std::atomic<Clock::rep> answered{Clock::now().time_since_epoch().count()};
  std::thread timer;
  std::atomic<bool> finished{false};

  bool sleep() {
    std::unique_lock<std::mutex> lock(mu);
    return !cv.wait_for(lock, period, [&] { return stopping.load(); });
  }

  // The thread ends after its current look and no longer takes a store error for a loss.
  void request_stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
  }

  void check_abort() {
    if (store->check({kAbortKey})) end_run(store->get_to_str(kAbortKey));
  }

  // Rank 0: every other rank's heartbeat must move within `silence`.
  void watch() {
    const int64_t world = static_cast<int64_t>(who.size());
    std::vector<std::string> keys;
    for (int64_t r = 1; r < world; ++r) keys.push_back(heartbeat_key(r));
    std::vector<std::vector<uint8_t>> last(keys.size());
    std::vector<Clock::time_point> moved(keys.size(), Clock::now());
    while (sleep()) {
      try {
        const auto beats = store->multiGet(keys);
        const auto now = Clock::now();
        for (size_t i = 0; i < keys.size(); ++i) {
          if (beats[i] != last[i]) {
            last[i] = beats[i];
            moved[i] = now;
          } else if (now - moved[i] > silence) {
            const int64_t r = static_cast<int64_t>(i) + 1;
            if (store->check({done_key(r)})) continue;  // finished, not lost
            const double s = std::chrono::duration<double>(now - moved[i]).count();
            const std::string line = stoch::str(
                "lost ", who[static_cast<size_t>(r)], ": no heartbeat for ", format_number(s, 3),
                " s (killed, stopped or cut off); every rank stops");
            store->set(kAbortKey, line);
            end_run(line);
          }
        }
        check_abort();
      } catch (const std::exception& e) {
        if (stopping) return;
        end_run(stoch::str("rank 0: the rendezvous store failed (", first_line(e.what()),
                           "); every rank stops"));
      }
    }
  }

  // Other ranks: beat, and look for a loss that rank 0 (or a failing rank) announced.
  void beat() {
    int64_t n = 0;
    while (sleep()) {
      try {
        store->set(heartbeat_key(rank), std::to_string(++n));
        check_abort();
        answered = Clock::now().time_since_epoch().count();
      } catch (const std::exception& e) {
        if (stopping) return;
        end_run(stoch::str("lost ", who[0], ", which holds the rendezvous store (",
                           first_line(e.what()), "); rank ", rank, " stops"));
      }
    }
  }

  void time_store() {
    while (sleep()) {
      const auto quiet = Clock::now() - Clock::time_point(Clock::duration(answered.load()));
      if (quiet > silence)
        end_run(stoch::str("lost ", who[0], ", which holds the rendezvous store: no answer for ",
                           format_number(std::chrono::duration<double>(quiet).count(), 3),
                           " s (killed, stopped or cut off); rank ", rank, " stops"));
    }
  }
};

Watchdog::Watchdog(c10::intrusive_ptr<c10d::Store> store, int64_t rank,
                   std::vector<std::string> who, milliseconds timeout)
    : impl_(std::make_shared<Impl>()) {
  Impl& w = *impl_;
  w.store = std::move(store);
  w.rank = rank;
  w.who = std::move(who);
  w.timeout = timeout;
  w.period = std::clamp(timeout / 8, milliseconds(50), milliseconds(2000));
  w.silence = std::max(timeout - 2 * w.period, w.period);
  // A store call that gets no answer within `silence` means rank 0 is gone.
  w.store->setTimeout(w.silence);
  w.thread = std::thread([self = impl_] {
    self->rank == 0 ? self->watch() : self->beat();
    self->finished = true;
  });
  if (w.rank > 0) w.timer = std::thread([self = impl_] { self->time_store(); });
}

Watchdog::~Watchdog() {
  Impl& w = *impl_;
  const bool failing = std::uncaught_exceptions() > 0;
  w.request_stop();
  // Said at once: this rank's last beat is at most a period old, so rank 0 never takes the end
  // for a loss.
  try {
    if (failing)
      w.store->set(kAbortKey, stoch::str(w.who[static_cast<size_t>(w.rank)],
                                         " stopped with an error (its log says which); every "
                                         "rank stops"));
    else if (w.rank > 0)
      w.store->set(done_key(w.rank), "1");
  } catch (const std::exception&) {
    // Rank 0 (the store) is gone already; nothing is left to tell.
  }
  if (w.timer.joinable()) w.timer.join();
  // A store call that never returns (rank 0 stopped for good) must not hold up the exit: the
  // thread owns its share of Impl and may be left behind.
  for (int i = 0; i < 40 && !w.finished; ++i) std::this_thread::sleep_for(w.period / 8);
  if (w.finished)
    w.thread.join();
  else
    w.thread.detach();
  if (w.rank == 0 && !failing) {
    // The store lives in this process: keep it up until every rank has said it is done, or
    // their thread would lose it and report a failure after a finished run.
    std::vector<std::string> keys;
    for (int64_t r = 1; r < static_cast<int64_t>(w.who.size()); ++r) keys.push_back(done_key(r));
    try {
      w.store->wait(keys, w.timeout);
    } catch (const std::exception&) {
    }
  }
}

void Watchdog::collective_failed(const std::string& what) {
  // The watchdog names the lost rank within the timeout and ends the process.
  std::this_thread::sleep_for(impl_->timeout + 2 * impl_->period);
  throw std::runtime_error(
      stoch::str("a collective failed and no rank was found lost: ", first_line(what)));
}

}  // namespace stoch::train
