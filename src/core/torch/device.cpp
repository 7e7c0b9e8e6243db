#include "core/torch/device.h"

#include <ATen/DeviceAccelerator.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <cstdlib>

#include "core/cpu_isa.h"
#include "core/cpus.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"

namespace stoch {

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw InputError(
          "run.device: cuda requested but no CUDA device is visible (use auto or cpu)");
    return c10::Device(c10::kCUDA, 0);
  }
  return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

bool use_bf16_autocast(const std::string& precision, const c10::Device& device,
                       bool language_model) {
  if (precision == "bf16") return true;
  if (precision == "fp32") return false;
  return device.is_cuda() && language_model;
}

std::string libtorch_cpu_kernels() {
  return lowercase(at::get_cpu_capability());
}

namespace {

// Whether this CPU runs LibTorch's kernels of `set`: its AVX2 ones need FMA too, its AVX-512
// ones the F, BW, VL and DQ subsets.
bool cpu_runs_kernels(const std::string& set) {
  if (set == "default") return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (set == "avx2") return avx2;
  if (set == "avx512")
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
  return false;
}

}  // namespace

void pin_libtorch_cpu_kernels(const std::string& set, const std::string& key) {
  if (set == "auto") return;
  if (!cpu_runs_kernels(set))
    throw InputError(stoch::str(key, ": this CPU (", cpu_model_name(), ") has no ", set,
                                "; expected auto, default or a set it has"));
  const char* env = std::getenv("ATEN_CPU_CAPABILITY");
  if (env && *env && lowercase(env) != set)
    log::warn(stoch::str(key, "=", set, " overrides ATEN_CPU_CAPABILITY=", env));
  ::setenv("ATEN_CPU_CAPABILITY", set.c_str(), 1);
  const std::string chosen = libtorch_cpu_kernels();
  if (chosen != set)
    throw std::runtime_error(stoch::str(key, "=", set, ": LibTorch had already chosen its ", chosen,
                                        " kernels in this process"));
}

void configure_threads(int64_t threads) {
  static bool interop_set = false;
  const int n = threads > 0 ? static_cast<int>(threads) : usable_cpus();
  at::set_num_threads(n);
  if (!interop_set) {
    // May be set once per process, before any inter-op work starts.
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception&) {
    }
    interop_set = true;
  }
}

double peak_device_memory_gb(const c10::Device& device) {
  if (!device.is_cuda()) return -1.0;
  const auto stats = at::accelerator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  // Index 0 of a StatArray is the aggregate over pool kinds.
  return static_cast<double>(stats.allocated_bytes[0].peak) / 1e9;
}

AutocastScope::AutocastScope(bool enabled, const c10::Device& device)
    : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(type_, false);
  at::autocast::clear_cache();
}

}  // namespace stoch
