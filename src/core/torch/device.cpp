#include "core/torch/device.h"

#include <ATen/DeviceAccelerator.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "core/cpus.h"
#include "core/errors.h"
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

bool use_bf16_autocast(const std::string& precision, const c10::Device& device) {
  if (precision == "bf16") return true;
  if (precision == "fp32") return false;
  return device.is_cuda();
}

std::string libtorch_cpu_kernels() {
  return lowercase(at::get_cpu_capability());
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
