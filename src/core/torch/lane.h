// A second lane of work beside the calling thread: one persistent worker that runs one job at
// a time. For small networks on a few cores, running independent products side by side (the
// target network's forward beside the online one; a weight gradient beside the input gradient)
// uses a second core far better than splitting each small product over OpenMP threads, whose
// wake-ups cost more than the products themselves.
#pragma once

#include <functional>
#include <memory>

namespace stoch {

class Lane {
 public:
  Lane();
  ~Lane();
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  // Waits for the previous job, then starts `job` on the worker.
  void start(std::function<void()> job);
  // Waits for the current job; rethrows what it threw.
  void wait();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Runs `beside` on the lane and `here` on this thread at once and returns when both are done,
// rethrowing what either threw; without a lane (null) runs `beside`, then `here`.
void run_side_by_side(Lane* lane, const std::function<void()>& beside,
                      const std::function<void()>& here);

// Waits for the lane's job when it goes out of scope, an exception's unwinding included, so
// that no job outlives the tensors it reads (errors met on the way out are dropped).
class LaneJoin {
 public:
  explicit LaneJoin(Lane* lane) : lane_(lane) {}
  ~LaneJoin();
  LaneJoin(const LaneJoin&) = delete;
  LaneJoin& operator=(const LaneJoin&) = delete;

 private:
  Lane* lane_;
};

}  // namespace stoch
