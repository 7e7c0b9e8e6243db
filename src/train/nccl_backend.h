// NCCL for data-parallel runs on CUDA GPUs: c10d's ProcessGroupNCCL from the torch wheel,
// compiled in only where NCCL's header is found (the wheel's nvidia-nccl package; see
// CMakeLists.txt), so the rest of stoch never sees CUDA headers.
#pragma once

#include <c10/util/intrusive_ptr.h>

#include <chrono>

namespace c10d {
class Store;
class Backend;
}  // namespace c10d

namespace stoch::train {

// Whether this build has the NCCL backend.
bool nccl_built();

// Makes this process's current CUDA device `index` (one GPU per local rank) and connects the
// ranks through `store`. Throws std::runtime_error when NCCL is not built in.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int world_size, int device_index,
                                                    std::chrono::milliseconds timeout);

}  // namespace stoch::train
