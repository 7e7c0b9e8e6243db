// The EAGLE-style draft head behind the information-surplus hook and speculative sampling.
// From the model's hidden state h_i and the embedding of the next token x_{i+1} it predicts the
// model's next feature f ~ h_{i+1}:
//   f = norm(GELU(W [ln(h_i); ln(e(x_{i+1}))] + b)),   q(x_{i+2} | h_i, x_{i+1}) = softmax(f U^T)
// with U the model's (detached) unembedding. Feeding f back in place of h drafts further ahead.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>

#include "core/torch/safetensors.h"
#include "models/gpt.h"

namespace stoch::generate {

class SurplusProbeImpl : public torch::nn::Module {
 public:
  // Initialised from its own generator (seed), never the global one: building a probe must not
  // move the training run's random streams.
  SurplusProbeImpl(int64_t d_model, uint64_t seed);

  // h: [..., d] hidden state (or a previous feature); next_embedding: [..., d]. Returns f.
  torch::Tensor feature(const torch::Tensor& h, const torch::Tensor& next_embedding);

  int64_t d_model() const { return d_; }
  torch::Tensor weight, bias;
  models::Norm out_norm{nullptr};

 private:
  int64_t d_;
};
TORCH_MODULE(SurplusProbe);

// Probe weights stored in a checkpoint under these names (the hook's state holds more).
TensorList probe_tensors(const SurplusProbeImpl& probe);
// Rebuilds a probe from a surplus hook's saved state; throws InputError when it holds none.
SurplusProbe probe_from_state(const TensorList& state, const std::string& what);

}  // namespace stoch::generate
