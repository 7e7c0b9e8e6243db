#include "core/cuda_memory.h"

#include <dlfcn.h>

#include <cstddef>

namespace stoch {

namespace {

// The few driver API entry points needed, with the ABI of cuda.h (CUresult is an int enum,
// CUdevice an int, CUcontext a pointer). The _v2 names are the ones cuda.h's macros have
// resolved to since CUDA 4 (memory) and 11 (primary-context release).
using CuInit = int (*)(unsigned);
using CuDeviceGet = int (*)(int*, int);
using CuPrimaryCtxRetain = int (*)(void**, int);
using CuPrimaryCtxRelease = int (*)(int);
using CuCtxPush = int (*)(void*);
using CuCtxPop = int (*)(void**);
using CuMemGetInfo = int (*)(std::size_t*, std::size_t*);

template <class F>
F symbol(void* lib, const char* name) {
  return reinterpret_cast<F>(dlsym(lib, name));
}

}  // namespace

double cuda_free_memory_bytes(int ordinal, const std::string& driver) {
  void* lib = dlopen(driver.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return -1;
  const auto init = symbol<CuInit>(lib, "cuInit");
  const auto device_get = symbol<CuDeviceGet>(lib, "cuDeviceGet");
  const auto retain = symbol<CuPrimaryCtxRetain>(lib, "cuDevicePrimaryCtxRetain");
  const auto release = symbol<CuPrimaryCtxRelease>(lib, "cuDevicePrimaryCtxRelease_v2");
  const auto push = symbol<CuCtxPush>(lib, "cuCtxPushCurrent_v2");
  const auto pop = symbol<CuCtxPop>(lib, "cuCtxPopCurrent_v2");
  const auto mem_get_info = symbol<CuMemGetInfo>(lib, "cuMemGetInfo_v2");
  double free_bytes = -1;
  int device = 0;
  void* context = nullptr;
  // Every call returns CUDA_SUCCESS (0) or the answer stays unknown. The library stays loaded:
  // LibTorch loads the same driver, and unloading it under a live context is not safe.
  if (init && device_get && retain && release && push && pop && mem_get_info && init(0) == 0 &&
      device_get(&device, ordinal) == 0 && retain(&context, device) == 0) {
    if (push(context) == 0) {
      std::size_t free = 0, total = 0;
      if (mem_get_info(&free, &total) == 0) free_bytes = static_cast<double>(free);
      void* popped = nullptr;
      pop(&popped);
    }
    release(device);
  }
  return free_bytes;
}

}  // namespace stoch
