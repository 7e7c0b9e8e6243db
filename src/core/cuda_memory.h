// Free memory on a CUDA device, asked of the driver itself (libcuda, loaded at run time), so that
// a run is refused before it allocates rather than failing in the caching allocator mid-step.
// Nothing here links against CUDA: on a machine without a driver the answer is "unknown".
#pragma once

#include <string>

namespace stoch {

// Bytes free on CUDA device `ordinal` (as numbered under CUDA_VISIBLE_DEVICES, like LibTorch's
// cuda:N), through the device's primary context, the one LibTorch uses too. Negative when no
// driver can be loaded from `driver` or it cannot answer (no such device, driver too old).
double cuda_free_memory_bytes(int ordinal, const std::string& driver = "libcuda.so.1");

}  // namespace stoch
