// A module's tensors as checkpoints save them ("param.<name>", then "buffer.<name>"), and
// their way back in.
#pragma once

#include <string>

#include "core/torch/safetensors.h"

namespace torch::nn {
class Module;
}

namespace stoch {

// The model's tensors as saved in checkpoints (parameters, then buffers); they alias the
// module's own.
TensorList model_tensors(torch::nn::Module& model);

// Copies saved model tensors into the module; throws InputError on a missing name or shape,
// naming `origin` (the checkpoint file they came from).
void load_model_tensors(torch::nn::Module& model, const TensorList& saved,
                        const std::string& origin);

}  // namespace stoch
