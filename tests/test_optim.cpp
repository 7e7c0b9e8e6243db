#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "core/torch/lane.h"
#include "isa_test.h"
#include "optim/adamw.h"
#include "optim/adamw_host.h"
#include "train/schedule.h"

namespace stoch {
namespace {

// float32 takes stoch's host update, float64 LibTorch's fused kernel (as CUDA tensors do); both
// match the reference ops.
TEST(AdamW, FusedKernelMatchesReferenceOps) {
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    torch::manual_seed(0);
    auto w = torch::randn({5, 4}, dtype), b = torch::randn({4}, dtype);
    std::vector<std::pair<std::string, torch::Tensor>> p1 = {
        {"fc.weight", w.clone().requires_grad_()}, {"fc.bias", b.clone().requires_grad_()}};
    std::vector<std::pair<std::string, torch::Tensor>> p2 = {
        {"fc.weight", w.clone().requires_grad_()}, {"fc.bias", b.clone().requires_grad_()}};
    optim::OptimConfig cfg;
    cfg.weight_decay = 0.1;
    optim::AdamW fused(p1, cfg);
    cfg.fused = false;
    optim::AdamW plain(p2, cfg);
    for (int step = 0; step < 5; ++step) {
      auto x = torch::randn({3, 5}, dtype);
      for (auto* ps : {&p1, &p2}) {
        auto loss = (torch::matmul(x, (*ps)[0].second) + (*ps)[1].second).pow(2).sum();
        loss.backward();
      }
      fused.step(1e-2);
      plain.step(1e-2);
      fused.zero_grad();
      plain.zero_grad();
    }
    EXPECT_TRUE(torch::allclose(p1[0].second, p2[0].second, 1e-5, 1e-6)) << dtype;
    EXPECT_TRUE(torch::allclose(p1[1].second, p2[1].second, 1e-5, 1e-6)) << dtype;
    EXPECT_FALSE(torch::allclose(p1[0].second, w)) << dtype;
  }
}

// The host update in every clone this CPU runs gives the same bits as the portable one (no
// fused multiply-adds; square roots and divisions round exactly), over lengths that leave every
// kind of vector tail, and matches PyTorch's AdamW written as reference ops.
TEST(AdamW, HostUpdateIsTheSameInEveryClone) {
  torch::manual_seed(4);
  for (const int64_t n : {1, 7, 16, 37, 1000}) {
    const auto w = torch::randn({n});
    std::vector<torch::Tensor> grads;
    for (int step = 0; step < 3; ++step) grads.push_back(torch::randn({n}));
    const double lr = 1e-2, wd = 0.1;
    optim::OptimConfig cfg;
    auto host = [&](CpuIsa isa) {
      test::IsaCap cap(isa);
      auto p = w.clone(), m = torch::zeros({n}), v = torch::zeros({n});
      for (size_t t = 0; t < grads.size(); ++t)
        optim::adamw_host_update(
            p.data_ptr<float>(), grads[t].data_ptr<float>(), m.data_ptr<float>(),
            v.data_ptr<float>(), n,
            optim::adamw_step_constants(lr, cfg.beta1, cfg.beta2, cfg.eps, wd, t + 1.0));
      return p;
    };
    std::vector<std::pair<std::string, torch::Tensor>> ref = {
        {"fc.weight", w.view({1, n}).clone().requires_grad_()}};
    cfg.fused = false;
    cfg.weight_decay = wd;
    optim::AdamW reference(ref, cfg);
    for (const auto& g : grads) {
      ref[0].second.mutable_grad() = g.view({1, n}).clone();
      reference.step(lr);
    }
    const auto portable = host(CpuIsa::kPortable);
    EXPECT_TRUE(torch::allclose(portable, ref[0].second.detach().view({n}), 1e-5, 1e-6)) << n;
    EXPECT_FALSE(torch::equal(portable, w)) << n;
    for (const CpuIsa isa : cpu_isas_runnable())
      EXPECT_TRUE(torch::equal(host(isa), portable)) << cpu_isa_name(isa) << " " << n;
  }
}

// The CPU update split over the helper lane (parameters past its 32k-element threshold, the
// cut inside a tensor) gives every element exactly what one thread gives it.
TEST(AdamW, HostUpdateOverTheLaneIsBitExact) {
  torch::manual_seed(1);
  const auto w = torch::randn({300, 150}), b = torch::randn({150});
  auto make = [&] {
    return std::vector<std::pair<std::string, torch::Tensor>>{
        {"fc.weight", w.clone().requires_grad_()}, {"fc.bias", b.clone().requires_grad_()}};
  };
  auto p1 = make(), p2 = make();
  optim::OptimConfig cfg;
  optim::AdamW one(p1, cfg), two(p2, cfg);
  Lane lane;
  two.set_lane(&lane);
  for (int step = 0; step < 3; ++step) {
    const auto gw = torch::randn({300, 150}), gb = torch::randn({150});
    p1[0].second.mutable_grad() = gw.clone();
    p1[1].second.mutable_grad() = gb.clone();
    p2[0].second.mutable_grad() = gw.clone();
    p2[1].second.mutable_grad() = gb.clone();
    one.step(1e-2);
    two.step(1e-2);
  }
  EXPECT_TRUE(torch::equal(p1[0].second, p2[0].second));
  EXPECT_TRUE(torch::equal(p1[1].second, p2[1].second));
  EXPECT_FALSE(torch::equal(p1[0].second, w));
}

TEST(AdamW, DecayOnlyOnMatrices) {
  EXPECT_TRUE(optim::decays("blocks.0.fc.weight", torch::zeros({2, 2})));
  EXPECT_FALSE(optim::decays("blocks.0.fc.bias", torch::zeros({2})));
  EXPECT_FALSE(optim::decays("blocks.0.ln1.weight", torch::zeros({2})));
  EXPECT_FALSE(optim::decays("wte.weight", torch::zeros({2, 2})));
  EXPECT_FALSE(optim::decays("wpe.weight", torch::zeros({2, 2})));
  // The transformer torso: its input projection is a matrix, its position table an embedding.
  EXPECT_TRUE(optim::decays("torso.embed.weight", torch::zeros({2, 2})));
  EXPECT_FALSE(optim::decays("torso.pos", torch::zeros({2, 2})));
}

TEST(Schedule, WarmupThenCosineToFloor) {
  train::ScheduleConfig s;
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(train::lr_multiplier(s, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(s, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(s, 10, 100), 1.0);
  EXPECT_NEAR(train::lr_multiplier(s, 55, 100), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(train::lr_multiplier(s, 100, 100), 0.1, 1e-12);
  s.kind = "linear";
  EXPECT_NEAR(train::lr_multiplier(s, 55, 100), 0.55, 1e-12);
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(train::lr_multiplier(s, 99, 100), 1.0);
}

// A decay that ends before the warm-up does would drop the peak rate to the floor in one step.
TEST(Schedule, ADecayEndingBeforeTheWarmupIsRefused) {
  train::ScheduleConfig s;
  s.warmup_steps = 5;
  for (const int64_t ok : {0, 6, 100}) {
    s.decay_steps = ok;
    EXPECT_NO_THROW(train::check_schedule(s)) << ok;
  }
  s.decay_steps = 3;
  try {
    train::check_schedule(s);
    ADD_FAILURE() << "decay_steps 3 with warm-up 5 was accepted";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "schedule.decay_steps: 3 is not after schedule.warmup_steps 5 (the rate would "
                 "drop from its peak to the floor in one step); expected 0 (train.steps) or "
                 "above 5");
  }
  s.decay_steps = 5;
  EXPECT_THROW(train::check_schedule(s), InputError);
  s.kind = "constant";  // no decay to end
  EXPECT_NO_THROW(train::check_schedule(s));
}

}  // namespace
}  // namespace stoch
