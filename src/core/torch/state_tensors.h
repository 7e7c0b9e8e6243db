// Non-tensor state (random streams, byte blobs) carried in checkpoint tensor lists, and lookup
// of a named tensor in such a list. Shared by the tasks and hooks that save their own state.
#pragma once

#include <string>

#include "core/rng.h"
#include "core/torch/safetensors.h"

namespace stoch {

// The tensor called `name` in `list`, or null when absent (a checkpoint may lack state that this
// build writes).
const at::Tensor* find_tensor(const TensorList& list, const std::string& name);

// The tensor called `name` in `list`; InputError naming `what` (the state's owner) when absent.
const at::Tensor& tensor_named(const TensorList& list, const std::string& name,
                               const std::string& what);

// An Rng's four state words as an int64 tensor [4], and back (InputError on another shape).
at::Tensor rng_to_tensor(const Rng& rng);
Rng rng_from_tensor(const at::Tensor& words, const std::string& what);

// Bytes as a uint8 tensor [n], and back.
at::Tensor bytes_to_tensor(const std::string& bytes);
std::string tensor_to_bytes(const at::Tensor& t);

}  // namespace stoch
