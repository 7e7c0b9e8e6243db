// Drawing tokens from a trained language model: plain autoregressive sampling, and speculative
// sampling that drafts with the surplus probe (EAGLE-style: feature plus next-token embedding)
// and verifies with the model, so the output distribution is exactly the model's.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "generate/surplus_probe.h"
#include "models/language_model.h"

namespace stoch::generate {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: all tokens
  double top_p = 1.0;
  int64_t vocab = 0;  // the data's vocabulary; padded model outputs beyond it are never drawn
};

// The distribution the sampler draws from: softmax(logits / T) restricted to the top-k tokens
// (and any tied with the k-th, as Hugging Face's TopKLogitsWarper keeps them) and the smallest
// top-p set, renormalised; one-hot on the argmax when greedy. logits [V].
torch::Tensor sampling_probs(const torch::Tensor& logits, const SamplingParams& sp);

struct SamplingStats {
  int64_t model_calls = 0;  // forward passes of the model
  int64_t drafted = 0;      // draft tokens proposed
  int64_t accepted = 0;     // draft tokens kept
};

// Appends n tokens to ids by one model call per token.
std::vector<int64_t> sample_plain(models::LanguageModelImpl& model, std::vector<int64_t> ids,
                                  int64_t n, const SamplingParams& sp, at::Generator& gen,
                                  SamplingStats* stats = nullptr);

// Appends n tokens to ids; each model call verifies `draft` tokens drafted by the probe and keeps
// the accepted prefix plus one token from the model (Leviathan et al. 2023; Chen et al. 2023).
std::vector<int64_t> sample_speculative(models::LanguageModelImpl& model, SurplusProbeImpl& probe,
                                        std::vector<int64_t> ids, int64_t n, int64_t draft,
                                        const SamplingParams& sp, at::Generator& gen,
                                        SamplingStats* stats = nullptr);

}  // namespace stoch::generate
