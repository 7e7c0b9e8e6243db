// Times each value loss on a batch of 4096 targets x 101 bins: building the target distribution
// alone, then a whole loss + backward through the head (which builds the targets again).
// Median of 50 repeats after 5 warm-up runs, printed as a Markdown table. On the CPU a second
// table times a DQN update's categorical pieces at MinAtar's size (batch 32, 6 actions, 51 bins):
// the host loops of value/categorical_ops.h against the LibTorch operators they replace, in the
// clone its header names; STOCH_CPU_ISA=portable|avx2|avx512 times a lower one.
// usage: value_loss_bench [cpu|cuda]
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "core/torch/device.h"
#include "timing.h"
#include "value/categorical_ops.h"
#include "value/targets.h"
#include "value/value_loss.h"

namespace {

constexpr int64_t kBatch = 4096, kBins = 101;
constexpr int kWarmup = 5, kRepeats = 50;

// Median wall time of `fn` in milliseconds; waits for the device so GPU work is counted.
double median_ms(const torch::Device& device, const std::function<void()>& fn) {
  return stoch::bench::median_ms(fn, kWarmup, kRepeats, [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  });
}

// hl_gauss_targets written as LibTorch operators (what runs off the CPU), for comparison with
// the CPU's loops.
torch::Tensor hl_gauss_by_operators(const torch::Tensor& y, const torch::Tensor& edges,
                                    double sigma) {
  const int64_t m = edges.size(0) - 1;
  const auto e = edges.to(y.scalar_type());
  const auto yc = torch::clamp(y, e[0], e[m]).unsqueeze(-1);
  const auto u = torch::erf((e - yc) / (sigma * std::sqrt(2.0)));
  const auto p = (u.narrow(-1, 1, m) - u.narrow(-1, 0, m)).clamp_min(0);
  return p / p.sum(-1, /*keepdim=*/true);
}

// A DQN update's categorical pieces at MinAtar's size, host loops against LibTorch operators.
void dqn_sized() {
  using namespace stoch::value;
  constexpr int64_t B = 32, A = 6, m = 51;
  constexpr int kRepeatsSmall = 2000;
  // One thread, as a DQN run's update has (its helper lane is not LibTorch's pool).
  torch::set_num_threads(1);
  const auto us = [](const std::function<void()>& fn) {
    return 1000.0 * stoch::bench::median_ms(fn, 50, kRepeatsSmall);
  };
  const auto support = torch::linspace(-10, 10, m);
  const auto logits = 3 * torch::randn({B, A, m});
  const auto actions = torch::randint(0, A, {B}, torch::kLong);
  auto target = torch::rand({B, m});
  target = target / target.sum(-1, true);
  auto head = logits.clone().requires_grad_();
  const auto row = torch::randn({A * m});
  std::printf(
      "\nDQN-sized categorical pieces, batch %lld x %lld actions x %lld bins, float32, CPU "
      "(stoch kernels %s), median of %d after 50 warm-up, microseconds\n\n",
      static_cast<long long>(B), static_cast<long long>(A), static_cast<long long>(m),
      stoch::cpu_isa_name(stoch::cpu_isa()), kRepeatsSmall);
  std::printf("| piece | host loops us | LibTorch operators us |\n| --- | ---: | ---: |\n");
  const double ce_host = us([&] {
    head.mutable_grad() = torch::Tensor();
    chosen_cross_entropy(head, actions, target).backward();
  });
  const double ce_ops = us([&] {
    head.mutable_grad() = torch::Tensor();
    const auto chosen = head.gather(1, actions.view({B, 1, 1}).expand({B, 1, m})).squeeze(1);
    (-(target * torch::log_softmax(chosen, -1)).sum(-1).mean()).backward();
  });
  std::printf("| chosen cross-entropy + backward | %.1f | %.1f |\n", ce_host, ce_ops);
  torch::NoGradGuard no_grad;
  const auto edges = bin_edges(0, 100, m, torch::kFloat64);
  const auto y = torch::rand({B}) * 100;
  const double sigma = 0.75 * 100.0 / m;
  std::printf("| hl_gauss targets for %lld | %.1f | %.1f |\n", static_cast<long long>(B),
              us([&] { hl_gauss_targets(y, edges, sigma); }),
              us([&] { hl_gauss_by_operators(y, edges, sigma); }));
  std::printf("| expectation over [%lld, %lld, %lld] | %.1f | %.1f |\n", static_cast<long long>(B),
              static_cast<long long>(A), static_cast<long long>(m),
              us([&] { expectation(logits, support); }),
              us([&] { torch::matmul(torch::softmax(logits, -1), support); }));
  const auto rows = logits.select(1, 0).contiguous();
  std::printf("| softmax over [%lld, %lld] | %.1f | %.1f |\n", static_cast<long long>(B),
              static_cast<long long>(m), us([&] { softmax_bins(rows); }),
              us([&] { torch::softmax(rows, -1); }));
  ValueLossConfig cfg;
  cfg.num_bins = m;
  const auto loss = make_value_loss(cfg);
  const auto support_f32 = loss->support().to(torch::kFloat);
  std::printf("| greedy action from one row of heads | %.1f | %.1f |\n",
              us([&] { loss->greedy_on_host(row.data_ptr<float>(), A); }), us([&] {
                torch::matmul(torch::softmax(row.view({1, A, m}), -1), support_f32)
                    .argmax(1)
                    .item<int64_t>();
              }));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace stoch::value;
  const torch::Device device(argc > 1 ? argv[1] : "cpu");
  torch::manual_seed(0);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const double v_min = -10, v_max = 10, sigma = 0.75 * (v_max - v_min) / kBins;
  const auto edges = bin_edges(v_min, v_max, kBins, f32);
  const auto centres = bin_centres(v_min, v_max, kBins, f32);
  const auto atoms = torch::linspace(v_min, v_max, kBins, f32);
  const auto y = torch::rand({kBatch}, f32) * 24 - 12;  // a sixth of the targets off the support

  // How each loss builds its targets (scalar losses and mse_on_expectation have none).
  const std::vector<std::pair<std::string, std::function<torch::Tensor()>>> losses = {
      {"mse", nullptr},
      {"huber", nullptr},
      {"two_hot", [&] { return two_hot_targets(y, centres); }},
      {"hl_gauss", [&] { return hl_gauss_targets(y, edges, sigma); }},
      {"c51", [&] { return two_hot_targets(y, atoms); }},
      {"mse_on_expectation", nullptr},
  };

  std::printf(
      "value losses, batch %lld x %lld bins, float32, %s (LibTorch kernels %s), %d intra-op "
      "threads; median of %d after %d warm-up\n\n",
      static_cast<long long>(kBatch), static_cast<long long>(kBins), argc > 1 ? argv[1] : "cpu",
      stoch::libtorch_cpu_kernels().c_str(), torch::get_num_threads(), kRepeats, kWarmup);
  std::printf("| loss | targets ms | loss+backward ms |\n| --- | ---: | ---: |\n");
  for (const auto& [name, targets] : losses) {
    ValueLossConfig cfg;
    cfg.loss = name;
    cfg.num_bins = kBins;
    cfg.v_min = v_min;
    cfg.v_max = v_max;
    auto loss = make_value_loss(cfg);
    loss->to(device);
    auto head = torch::randn({kBatch, loss->head_outputs()}, f32).requires_grad_();
    std::string targets_ms = "-";
    if (targets) {
      torch::NoGradGuard no_grad;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", median_ms(device, [&] { targets(); }));
      targets_ms = buf;
    }
    const double step_ms = median_ms(device, [&] {
      head.mutable_grad() = torch::Tensor();
      loss->loss(head, y).backward();
    });
    std::printf("| %s | %s | %.3f |\n", name.c_str(), targets_ms.c_str(), step_ms);
  }

  // The RL-side C51 target: shift and project a next-state distribution.
  const auto next_probs = torch::softmax(torch::randn({kBatch, kBins}, f32), -1);
  const auto rewards = torch::rand({kBatch}, f32) * 2 - 1;
  const auto discounts = (torch::rand({kBatch}, f32) > 0.05).to(torch::kFloat32) * 0.99;
  {
    torch::NoGradGuard no_grad;
    std::printf("| c51_project (RL target) | %.3f | - |\n",
                median_ms(device, [&] { c51_project(next_probs, rewards, discounts, atoms); }));
    // What the CPU's hl_gauss loops replaced (and what runs on a GPU).
    std::printf("| hl_gauss targets by LibTorch operators | %.3f | - |\n",
                median_ms(device, [&] { hl_gauss_by_operators(y, edges, sigma); }));
  }
  if (device.is_cpu()) dqn_sized();
  return 0;
}
