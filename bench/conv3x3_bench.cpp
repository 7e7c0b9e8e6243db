// Times the first convolution of MinAtar's DQN network (batch 32 and one frame for acting,
// 4 x 10 x 10 binary frames with 8% ones, 16 output channels, no padding): stoch's direct
// kernels (models/kernels/conv3x3.h) against LibTorch's conv2d, forward alone and forward plus the
// weight gradient. Median of 200 repeats after 20 warm-up runs, as a Markdown table under a line
// naming the CPU and the clone. STOCH_CPU_ISA caps the clone.
// usage: conv3x3_bench [threads]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "cpu_line.h"
#include "models/kernels/conv3x3.h"
#include "timing.h"

namespace {

constexpr int kWarmup = 20, kRepeats = 200;

double us(const std::function<void()>& fn) {
  return 1e3 * stoch::bench::median_ms(fn, kWarmup, kRepeats);
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 1);
  stoch::bench::print_cpu_line();
  std::printf(
      "| batch | conv2d fwd us | stoch fwd us | conv2d fwd + weight grad us | stoch fwd + weight "
      "grad us |\n|---|---|---|---|---|\n");
  for (const int64_t B : {1L, 32L}) {
    torch::manual_seed(0);
    const auto x = torch::bernoulli(torch::full({B, 4, 10, 10}, 0.08));
    const auto w = torch::randn({16, 4, 3, 3}).requires_grad_(), b = torch::randn({16});
    const auto g = torch::randn({B, 16, 8, 8});
    const double torch_fwd = us([&] {
      torch::NoGradGuard no_grad;
      torch::conv2d(x, w, b);
    });
    const double stoch_fwd = us([&] { stoch::models::conv3x3_forward(x, w.detach(), b, 0); });
    const double torch_both = us([&] {
      torch::conv2d(x, w, b).backward(g);
      w.mutable_grad() = torch::Tensor();
    });
    const double stoch_both = us([&] {
      stoch::models::conv3x3_forward(x, w.detach(), b, 0);
      stoch::models::conv3x3_weight_grad(x, g.view({B, 16, 64}), 0, 0, B);
    });
    std::printf("| %ld | %.1f | %.1f | %.1f | %.1f |\n", B, torch_fwd, stoch_fwd, torch_both,
                stoch_both);
  }
}
