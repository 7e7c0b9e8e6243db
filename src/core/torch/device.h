// Device and precision choices, resolved once from the run config.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace stoch {

// "auto" picks CUDA when a GPU is visible; "cuda" without one is an input error.
c10::Device resolve_device(const std::string& name);

// "auto" means bf16 autocast for a language model on CUDA, fp32 on the CPU and for value networks
// (their outputs are values, whose bf16 rounding, 0.25 near 50, would decide greedy actions and
// bootstrap targets); "bf16" and "fp32" are taken as they are.
bool use_bf16_autocast(const std::string& precision, const c10::Device& device,
                       bool language_model);

// The instruction set LibTorch's own vectorised CPU kernels (softmax, reductions, ...) use,
// chosen apart from stoch's: "avx512", "avx2" or "default" (the names ATEN_CPU_CAPABILITY takes).
// They round differently on each, so a run's bits depend on it, and so do LibTorch's timings
// that stoch's kernels are measured against.
std::string libtorch_cpu_kernels();

// Makes LibTorch's CPU kernels use `set` ("default", "avx2", "avx512"; "auto" changes nothing)
// by setting ATEN_CPU_CAPABILITY, which LibTorch reads once, at its first dispatched kernel; so
// call it before any tensor work. Throws InputError naming `key` when this CPU lacks the set (on
// one, LibTorch would die of an illegal instruction), and runtime_error when LibTorch has already
// chosen another set in this process.
void pin_libtorch_cpu_kernels(const std::string& set, const std::string& key);

// Sets LibTorch's intra-op threads (0: every core) and one inter-op thread; on few cores,
// oversubscription between the two pools costs more than it gives.
void configure_threads(int64_t threads);

// Peak memory the caching allocator has handed out on `device` since the process started, in
// GB (torch.cuda.max_memory_allocated); negative on the CPU.
double peak_device_memory_gb(const c10::Device& device);

// bf16 autocast for the forward pass while alive (no-op when disabled).
class AutocastScope {
 public:
  AutocastScope(bool enabled, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType type_;
};

}  // namespace stoch
