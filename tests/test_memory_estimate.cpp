// A run that cannot fit in memory is refused before anything is allocated or written, with the
// estimate; the estimate's parts follow the config.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>

#include <dlfcn.h>
#include <torch/cuda.h>

#include "core/config_tree.h"
#include "core/cuda_memory.h"
#include "core/errors.h"
#include "core/registry.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/memory_estimate.h"

namespace stoch {
namespace {

TEST(MemoryEstimate, AvailableMemoryIsRead) {
  // Linux always has /proc/meminfo; a few MB at least are free while the tests run.
  EXPECT_GT(train::available_memory_bytes(), 1e6);
}

TEST(MemoryEstimate, ARunThatCannotFitExitsTwoAtOnceWithTheEstimate) {
  const std::string dir = test::temp_dir("memory");
  const auto t0 = std::chrono::steady_clock::now();
  const auto refused =
      test::run_stoch("train " + test::source_path("configs/quickstart.yaml") + " --run-dir " +
                      dir + "/run --set train.batch_size=100000000");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("the run needs at least "), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("activations"), std::string::npos) << refused.output;
  // The advice names the keys of the largest part, here the activations.
  EXPECT_NE(refused.output.find("is available; the largest part is activations: lower "
                                "train.batch_size (raise train.grad_accum to keep the batch)"),
            std::string::npos)
      << refused.output;
  EXPECT_LT(took, 60) << "the refusal should come before any work";
  EXPECT_FALSE(test::fs::exists(dir + "/run")) << "a refused run left its folder";

  // A replay buffer too large (CartPole: 2 x 4 floats + 9 bytes a transition, 4 TB here) is
  // refused the same way, and so is a value-regression input set too large.
  // Each refusal names the key behind its largest part (it always named train.batch_size, the
  // model's size and dqn.replay_capacity, whatever the task).
  for (const auto& [config, set, part] :
       {std::tuple<std::string, std::string, std::string>{
            "configs/rl/cartpole_mse.yaml", "dqn.replay_capacity=100000000000",
            "the largest part is replay buffer: lower dqn.replay_capacity"},
        {"configs/value/nonstationary.yaml", "data.num_inputs=100000000000",
         "the largest part is data (inputs and targets): lower data.num_inputs"}}) {
    const auto r = test::run_stoch("train " + test::source_path(config) + " --run-dir " + dir +
                                   "/rl --set " + set);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("the run needs at least "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << r.output;
    EXPECT_FALSE(test::fs::exists(dir + "/rl")) << "a refused run left its folder";
  }

  // A value network whose weights alone cannot be allocated (400 TB, past any address space): the
  // estimate, which builds the network to count it, refuses it too (it ended in the allocator's
  // error, exit 1).
  {
    const auto r =
        test::run_stoch("train " + test::source_path("configs/value/nonstationary.yaml") +
                        " --run-dir " + dir + "/wide --set 'model.hidden=[10000000, 10000000]'");
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("model: the network's weights alone cannot be allocated ("),
              std::string::npos)
        << r.output;
    // One line of stoch's (AddressSanitizer adds one of its own, starting "==", when built with
    // it).
    int lines = 0;
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);) lines += line.rfind("==", 0) != 0;
    EXPECT_EQ(lines, 1) << r.output;
    EXPECT_FALSE(test::fs::exists(dir + "/wide"));
  }

  // The same config with a batch that fits trains.
  const auto ok = test::run_stoch("train " + test::source_path("configs/quickstart.yaml") +
                                  " --run-dir " + dir + "/small --set train.steps=2");
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_NE(ok.output.find("memory: at least "), std::string::npos) << ok.output;
}

// A token folder without meta.json sizes the vocabulary by its largest id, which the start's
// estimate cannot read: one stray id of 2 billion (damage) would ask for a 2-billion-row
// embedding. Refused once the data is read, before the model is allocated.
TEST(MemoryEstimate, AVocabularyReadFromTheDataIsCheckedToo) {
  const std::string dir = test::temp_dir("memory-vocab");
  test::fs::create_directories(dir + "/tok");
  for (const std::string split : {"train", "val"}) {
    std::vector<uint32_t> ids(200, 7);
    ids[100] = 2000000000u;
    int32_t header[256] = {};
    header[0] = 20240801;  // llm.c, uint32 ids
    header[1] = 7;
    header[2] = static_cast<int32_t>(ids.size());
    std::ofstream out(dir + "/tok/x_" + split + "_000000.bin", std::ios::binary);
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    out.write(reinterpret_cast<const char*>(ids.data()),
              static_cast<std::streamsize>(ids.size() * sizeof(uint32_t)));
  }
  test::write_text(dir + "/c.yaml",
                   "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + dir +
                       "/tok}\nmodel: {context: 8, n_layer: 1, n_head: 2, d_model: 16}\n"
                       "train: {steps: 2, batch_size: 2, eval_batches: 1}\n");
  const auto r = test::expect_train_refused(dir, "the run needs at least ");
  EXPECT_NE(r.output.find("parameters"), std::string::npos) << r.output;
}

// The language model's activations: one micro-batch's per worker in use (no more workers than a
// step has micro-batches: cpu_workers 4 with grad_accum 1 counted four and refused runs that
// fit), at 2 bytes an element under bf16 autocast (4 overstated them).
TEST(MemoryEstimate, LmActivationsCountTheWorkersInUseAndTheirPrecision) {
  const auto activations = [](const std::string& train, const std::string& precision) {
    auto cfg = train::parse_experiment(config::parse_text(
        "task: lm\nrun: {device: cpu, precision: " + precision + "}\ntrain: " + train + "\n", "t"));
    const auto e = registry<train::TaskEntry>().get("lm", "task").estimate_memory(cfg, 1);
    for (const auto& p : e.parts)
      if (p.what == "activations") return p.bytes;
    ADD_FAILURE() << "no activations part: " << e.describe();
    return 0.0;
  };
  const double one = activations("{cpu_workers: 1, grad_accum: 1}", "fp32");
  ASSERT_GT(one, 0);
  EXPECT_EQ(activations("{cpu_workers: 4, grad_accum: 1}", "fp32"), one);
  EXPECT_EQ(activations("{cpu_workers: 4, grad_accum: 2}", "fp32"), 2 * one);
  EXPECT_EQ(activations("{cpu_workers: 4, grad_accum: 8}", "fp32"), 4 * one);
  EXPECT_EQ(activations("{cpu_workers: 1, grad_accum: 1}", "bf16"), one / 2);
}

TEST(MemoryEstimate, PartsAddUpAndShardingDividesTheOptimizerState) {
  train::MemoryEstimate whole, sharded;
  train::add_training_state(whole, 1e6, 1.0, "model.hidden");
  train::add_training_state(sharded, 1e6, 0.25, "model.hidden");
  EXPECT_DOUBLE_EQ(whole.total(), 16e6);  // weights, gradients, two moments: 4 bytes each
  EXPECT_DOUBLE_EQ(sharded.total(), 8e6 + 2e6);
  EXPECT_NE(whole.describe().find("optimizer state 8 MB"), std::string::npos) << whole.describe();
  EXPECT_THROW(train::check_memory_fits(whole, int64_t{1} << 40, c10::Device(c10::kCPU)),
               InputError);
  EXPECT_NO_THROW(train::check_memory_fits(whole, 1, c10::Device(c10::kCPU)));
}

TEST(MemoryEstimate, CudaFreeMemoryIsAskedOfTheDriverAndEveryContextIsGivenBack) {
  // The stand-in driver has two devices with 2 GB and 0.5 GB free.
  EXPECT_DOUBLE_EQ(cuda_free_memory_bytes(0, STOCH_FAKE_CUDA_DRIVER), 2e9);
  EXPECT_DOUBLE_EQ(cuda_free_memory_bytes(1, STOCH_FAKE_CUDA_DRIVER), 5e8);
  EXPECT_LT(cuda_free_memory_bytes(2, STOCH_FAKE_CUDA_DRIVER), 0) << "no third device";
  EXPECT_LT(cuda_free_memory_bytes(0, "/nonexistent/libcuda.so.1"), 0) << "no driver: unknown";
  void* lib = dlopen(STOCH_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(lib, nullptr);
  const auto open_handles = reinterpret_cast<int (*)()>(dlsym(lib, "fake_cuda_open_handles"));
  ASSERT_NE(open_handles, nullptr);
  EXPECT_EQ(open_handles(), 0) << "a primary context retained or pushed was not given back";
  dlclose(lib);
}

TEST(MemoryEstimate, TheRealDriverAnswersOnAMachineWithAGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here";
  const double free = cuda_free_memory_bytes(0);
  EXPECT_GT(free, 1e8) << "the driver gave no free memory for cuda:0";
  EXPECT_LT(free, 1e13);
  EXPECT_LT(cuda_free_memory_bytes(static_cast<int>(torch::cuda::device_count())), 0)
      << "a device past the last one has no free memory to report";
}

TEST(MemoryEstimate, OnCudaTheDevicePartsCountAgainstTheDeviceAndTheRestAgainstTheHost) {
  train::MemoryEstimate e;
  train::add_training_state(e, 1e8, 1.0, "model.hidden");                // 1.6 GB on the device
  e.add("replay buffer", 3e9, "dqn.replay_capacity", /*on_host=*/true);  // 3 GB on the host
  const c10::Device gpu(c10::kCUDA, 1), cpu(c10::kCPU);
  // Fits: 1.6 GB in 2 GB free on the device, 3 GB in 4 GB on the host.
  EXPECT_NO_THROW(train::check_memory_fits(e, 1, gpu, {4e9, 2e9}));
  // The device is too small; the message names it and only its parts.
  try {
    train::check_memory_fits(e, 1, gpu, {4e9, 1e9});
    ADD_FAILURE() << "1.6 GB fitted in 1 GB of device memory";
  } catch (const InputError& err) {
    const std::string m = err.what();
    EXPECT_NE(m.find("1.6 GB of memory on cuda:1"), std::string::npos) << m;
    EXPECT_NE(m.find("1 GB is free there; the largest part is optimizer state: lower "
                     "model.hidden, or use more GPUs with dist.shard"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("replay buffer"), std::string::npos) << m;
  }
  // The host-side parts count once per rank of this machine, against the host.
  EXPECT_THROW(train::check_memory_fits(e, 2, gpu, {4e9, 2e9}), InputError);
  // Unknown device memory (no driver to ask) checks the host only.
  EXPECT_NO_THROW(train::check_memory_fits(e, 1, gpu, {4e9, -1}));
  // On CPU everything is host memory, and the device figure means nothing.
  EXPECT_THROW(train::check_memory_fits(e, 1, cpu, {4e9, 1e12}), InputError);
  EXPECT_NO_THROW(train::check_memory_fits(e, 1, cpu, {5e9, 0}));
}

}  // namespace
}  // namespace stoch
