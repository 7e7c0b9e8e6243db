// A stand-in for libcuda with the driver API's ABI, for testing cuda_free_memory_bytes on
// machines without a GPU: two devices, 2 GB and 0.5 GB free, and a count of the contexts
// retained or pushed and not yet given back.
#include <cstddef>

namespace {
int contexts[2];
int* current = nullptr;
int open_handles = 0;
}  // namespace

extern "C" {
int cuInit(unsigned flags) {
  return flags == 0 ? 0 : 1;
}
int cuDeviceGet(int* device, int ordinal) {
  if (ordinal < 0 || ordinal > 1) return 101;  // CUDA_ERROR_INVALID_DEVICE
  *device = 100 + ordinal;
  return 0;
}
int cuDevicePrimaryCtxRetain(void** context, int device) {
  *context = &contexts[device - 100];
  ++open_handles;
  return 0;
}
int cuDevicePrimaryCtxRelease_v2(int) {
  --open_handles;
  return 0;
}
int cuCtxPushCurrent_v2(void* context) {
  current = static_cast<int*>(context);
  ++open_handles;
  return 0;
}
int cuCtxPopCurrent_v2(void** context) {
  *context = current;
  current = nullptr;
  --open_handles;
  return 0;
}
int cuMemGetInfo_v2(std::size_t* free, std::size_t* total) {
  if (current == nullptr) return 201;  // CUDA_ERROR_INVALID_CONTEXT
  *free = current == &contexts[0] ? 2000000000 : 500000000;
  *total = 4000000000;
  return 0;
}
int fake_cuda_open_handles() {
  return open_handles;
}
}
