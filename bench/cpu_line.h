// The first line of the C++ benchmarks that time stoch's CPU kernels against LibTorch's: the CPU,
// the clone of stoch's kernels it runs, LibTorch's own kernel set and the thread count, since each
// of them moves the figures.
#pragma once

#include <ATen/Parallel.h>

#include <cstdio>

#include "core/cpu_isa.h"
#include "core/torch/device.h"

namespace stoch::bench {

inline void print_cpu_line() {
  std::printf("%s, LibTorch kernels %s, %d threads\n\n", cpu_isa_summary().c_str(),
              libtorch_cpu_kernels().c_str(), at::get_num_threads());
}

}  // namespace stoch::bench
