// Times causal attention forward + backward on the CPU, stoch's kernels against LibTorch's
// scaled-dot-product attention, for the heads of configs/bench/lm_{tiny,small}_cpu.yaml and
// two longer contexts (up to the kernels' limit of 1024).
// Median of 30 repeats after 5 warm-up runs, printed as a Markdown table under a line naming the
// CPU and the kernels' clone. STOCH_CPU_ISA=portable|avx2|avx512 times a lower clone.
// usage: attention_bench [threads]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "cpu_line.h"
#include "models/causal_attention.h"
#include "timing.h"

namespace {

constexpr int kWarmup = 5, kRepeats = 30;

double median_ms(const std::function<void()>& fn) {
  return stoch::bench::median_ms(fn, kWarmup, kRepeats);
}

using Attention =
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;

// Forward alone (no autograd), then forward + backward.
std::pair<double, double> time_attention(const Attention& attention, int64_t B, int64_t H,
                                         int64_t T, int64_t D) {
  torch::manual_seed(0);
  auto q = torch::randn({B, H, T, D}).requires_grad_(),
       k = torch::randn({B, H, T, D}).requires_grad_(),
       v = torch::randn({B, H, T, D}).requires_grad_();
  const auto g = torch::randn({B, H, T, D});
  const double fwd = median_ms([&] {
    torch::NoGradGuard no_grad;
    attention(q, k, v);
  });
  const double both = median_ms([&] { attention(q, k, v).backward(g); });
  return {fwd, both};
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  const Attention sdpa = [](const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  };
  stoch::bench::print_cpu_line();
  std::printf(
      "| B x H x T x D | SDPA fwd ms | stoch fwd ms | SDPA fwd+bwd ms | stoch fwd+bwd ms |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const auto& [B, H, T, D] : std::vector<std::array<int64_t, 4>>{
           {16, 4, 128, 32}, {8, 6, 256, 64}, {2, 6, 512, 64}, {1, 4, 1024, 64}}) {
    const auto [sf, sb] = time_attention(sdpa, B, H, T, D);
    const auto [hf, hb] = time_attention(stoch::models::causal_attention_host, B, H, T, D);
    std::printf("| %ld x %ld x %ld x %ld | %.2f | %.2f | %.2f | %.2f |\n", B, H, T, D, sf, hf, sb,
                hb);
  }
}
