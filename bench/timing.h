// Timing shared by the C++ benchmarks: the median wall time of a call, after warm-up calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace stoch::bench {

// Median of `repeats` timed calls of fn, in milliseconds, after `warmup` untimed ones. `sync`
// (if set) runs after each call, inside the timing: a GPU benchmark waits for the device there.
inline double median_ms(const std::function<void()>& fn, int warmup, int repeats,
                        const std::function<void()>& sync = {}) {
  for (int i = 0; i < warmup; ++i) fn();
  if (sync) sync();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (sync) sync();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + repeats / 2, ms.end());
  return ms[repeats / 2];
}

}  // namespace stoch::bench
