// Measures of representation health ("Implicit under-parameterization", Kumar et al. 2021;
// "The dormant neuron phenomenon", Sokar et al. 2023), shared by the value-network hooks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stoch::hooks {

// srank_delta: the smallest k whose top-k singular values of the [N, d] feature matrix hold
// (1 - delta) of their sum.
int64_t srank(const at::Tensor& features, double delta = 0.01);

// exp of the entropy of the normalised singular values (Roy and Vetterli's effective rank).
double effective_rank(const at::Tensor& features);

// Share of the [N, units] activations' units whose mean |activation|, divided by the layer's
// mean over units, is at most tau.
double dormant_share(const at::Tensor& activations, double tau = 0.025);

}  // namespace stoch::hooks
