#include "core/torch/lane.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace stoch {

struct Lane::State {
  std::mutex m;
  std::condition_variable cv;
  std::function<void()> job;
  std::atomic<bool> pending{false}, busy{false};
  bool quit = false;
  std::exception_ptr error;
  std::thread worker;

  void run() {
    // The worker's kernels use the process's intra-op thread count (MKL and OpenMP read it
    // per thread).
    at::init_num_threads();
    for (;;) {
      // Jobs come every few tens of microseconds while training: spin briefly before sleeping.
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      for (int i = 1; !pending.load(std::memory_order_acquire); ++i) {
        if (i % 64 != 0) continue;
        // Give the core up now and then: the caller may have been scheduled onto this one.
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() >= spin_until) break;
      }
      std::function<void()> todo;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return quit || pending.load(std::memory_order_acquire); });
        if (quit && !pending) return;
        todo = std::move(job);
        pending.store(false, std::memory_order_release);
      }
      try {
        todo();
      } catch (...) {
        error = std::current_exception();
      }
      busy.store(false, std::memory_order_release);
    }
  }
};

Lane::Lane() : s_(std::make_unique<State>()) {
  s_->worker = std::thread([s = s_.get()] { s->run(); });
}

Lane::~Lane() {
  try {
    wait();
  } catch (...) {
  }
  {
    std::lock_guard<std::mutex> lock(s_->m);
    s_->quit = true;
  }
  s_->cv.notify_one();
  s_->worker.join();
}

void Lane::start(std::function<void()> job) {
  wait();
  {
    std::lock_guard<std::mutex> lock(s_->m);
    s_->job = std::move(job);
    s_->busy.store(true, std::memory_order_release);
    s_->pending.store(true, std::memory_order_release);
  }
  s_->cv.notify_one();
}

void Lane::wait() {
  // Spinning keeps the hand-off in the microseconds; yielding now and then lets the worker
  // run should the scheduler have put both threads on one core.
  for (int i = 1; s_->busy.load(std::memory_order_acquire); ++i)
    if (i % 64 == 0) std::this_thread::yield();
  if (s_->error) {
    auto e = s_->error;
    s_->error = nullptr;
    std::rethrow_exception(e);
  }
}

void run_side_by_side(Lane* lane, const std::function<void()>& beside,
                      const std::function<void()>& here) {
  if (!lane) {
    beside();
    here();
    return;
  }
  lane->start(beside);
  try {
    here();
  } catch (...) {
    LaneJoin join(lane);  // `here`'s error wins; the lane's job must still end first
    throw;
  }
  lane->wait();  // rethrows what `beside` threw
}

LaneJoin::~LaneJoin() {
  if (!lane_) return;
  try {
    lane_->wait();
  } catch (...) {
  }
}

}  // namespace stoch
