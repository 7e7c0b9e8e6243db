#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <mutex>
#include <set>

namespace stoch {
namespace {

// at::parallel_for is a header template around `#pragma omp parallel`: compiled without OpenMP,
// stoch's own calls to it (the attention kernels' heads, the AdamW pass) run on one thread.
TEST(IntraOpThreads, ParallelForInStochCodeUsesThem) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  std::mutex m;
  std::set<int> seen;
  at::parallel_for(0, 64, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(m);
    seen.insert(at::get_thread_num());
  });
  at::set_num_threads(threads);
  EXPECT_EQ(seen.size(), 2u);
}

}  // namespace
}  // namespace stoch
