#include "generate/surplus_probe.h"

#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "core/strings.h"
#include "core/torch/state_tensors.h"

namespace stoch::generate {

SurplusProbeImpl::SurplusProbeImpl(int64_t d_model, uint64_t seed) : d_(d_model) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Default Linear scale (uniform in +-1/sqrt(fan_in)), drawn from the probe's own generator.
  const double bound = 1.0 / std::sqrt(2.0 * static_cast<double>(d_model));
  weight = register_parameter(
      "weight", at::rand({d_model, 2 * d_model}, gen, torch::kFloat) * (2 * bound) - bound);
  bias = register_parameter("bias", torch::zeros({d_model}));
  out_norm = register_module("out_norm", models::Norm(d_model, true));
}

torch::Tensor SurplusProbeImpl::feature(const torch::Tensor& h,
                                        const torch::Tensor& next_embedding) {
  const auto u =
      torch::cat({torch::layer_norm(h, {d_}), torch::layer_norm(next_embedding, {d_})}, -1);
  return out_norm->forward(torch::gelu(torch::linear(u, weight, bias)));
}

TensorList probe_tensors(const SurplusProbeImpl& probe) {
  TensorList out;
  for (const auto& p : probe.named_parameters()) out.emplace_back("probe." + p.key(), p.value());
  return out;
}

SurplusProbe probe_from_state(const TensorList& state, const std::string& what) {
  SurplusProbe probe(tensor_named(state, "probe.weight", what).size(0), 0);
  torch::NoGradGuard no_grad;
  for (auto& p : probe->named_parameters()) {
    const auto& t = tensor_named(state, "probe." + p.key(), what);
    if (t.sizes() != p.value().sizes())
      throw InputError(stoch::str(what, ": probe tensor probe.", p.key(), " has the wrong shape"));
    p.value().copy_(t);
  }
  return probe;
}

}  // namespace stoch::generate
