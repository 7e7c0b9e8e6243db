// Times one AdamW step on the CPU, stoch's host update (optim/adamw_host.h, split over the
// intra-op threads as the language models run it) against LibTorch's fused kernel
// (at::_fused_adamw_), for the parameter counts of MinAtar's DQN network and of
// configs/bench/lm_{tiny,small}_cpu.yaml. Median of 50 repeats after 5 warm-up runs, as a
// Markdown table under a line naming the CPU and the clone. STOCH_CPU_ISA caps the clone.
// usage: adamw_bench [threads]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cpu_line.h"
#include "optim/adamw_host.h"
#include "timing.h"

namespace {

constexpr int kWarmup = 5, kRepeats = 50;

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  stoch::bench::print_cpu_line();
  std::printf("| parameters | LibTorch fused ms | stoch host ms |\n|---|---|---|\n");
  for (const int64_t n : {132566L, 826112L, 10844160L}) {
    torch::manual_seed(0);
    auto p = torch::randn({n}), g = torch::randn({n}), m = torch::zeros({n}), v = torch::zeros({n}),
         step = torch::zeros({1});
    const double fused = stoch::bench::median_ms(
        [&] {
          step += 1;
          at::_fused_adamw_({p}, {g}, {m}, {v}, {}, {step}, 1e-3, 0.9, 0.95, 0.1, 1e-8,
                            /*amsgrad=*/false, /*maximize=*/false);
        },
        kWarmup, kRepeats);
    const auto c = stoch::optim::adamw_step_constants(1e-3, 0.9, 0.95, 1e-8, 0.1, 10);
    float *pp = p.data_ptr<float>(), *mp = m.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    const double host = stoch::bench::median_ms(
        [&] {
          at::parallel_for(0, n, 1 << 15, [&](int64_t a, int64_t b) {
            stoch::optim::adamw_host_update(pp + a, gp + a, mp + a, vp + a, b - a, c);
          });
        },
        kWarmup, kRepeats);
    std::printf("| %ld | %.3f | %.3f |\n", n, fused, host);
  }
}
