// A GPT-style decoder-only transformer: pre-norm blocks, learned or rotary positions, GELU MLP,
// tied embeddings, GPT-2 initialisation. Attention goes through stoch's own kernels on the CPU
// (models/causal_attention.h) or LibTorch's fused scaled-dot-product attention; the plain
// masked-softmax form is kept as the tested reference.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <string>

#include "models/language_model.h"

namespace stoch::models {

// LayerNorm with an optional bias (LibTorch's module always has one).
class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
};
TORCH_MODULE(Norm);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const LmConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rope_cos,
                        const torch::Tensor& rope_sin);

  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t n_head_, d_model_;
  double dropout_;
  std::string attention_;
  bool host_kernels_;  // stoch's CPU kernels where they apply (causal_attention.h)
  torch::nn::Dropout resid_drop_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const LmConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rope_cos,
                        const torch::Tensor& rope_sin);

  Norm ln1{nullptr}, ln2{nullptr};
  CausalSelfAttention attn{nullptr};
  torch::nn::Linear fc{nullptr}, fc_proj{nullptr};
  torch::nn::Dropout drop{nullptr};

 private:
  std::string gelu_approximate_;  // "none" or "tanh", torch::gelu's names
};
TORCH_MODULE(Block);

// Registered as model.arch "gpt"; GPT-2's format (models/hf_gpt2.h) reads and writes it.
class GptImpl : public LanguageModelImpl {
 public:
  explicit GptImpl(LmConfig cfg);

  torch::Tensor hidden(const torch::Tensor& idx) override;
  torch::Tensor logits(const torch::Tensor& h) override;
  torch::Tensor embed(const torch::Tensor& ids) override { return wte->forward(ids); }
  torch::Tensor unembedding() const override { return wte->weight; }  // tied
  int64_t num_parameters(bool exclude_position_embedding = true) const override;
  std::string describe() const override {
    return std::to_string(cfg_.n_layer) + " layers, " + LanguageModelImpl::describe();
  }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Norm ln_f{nullptr};

 private:
  void init_weights();
  torch::nn::Dropout drop_{nullptr};
  torch::Tensor rope_cos_, rope_sin_;
};
TORCH_MODULE(Gpt);

}  // namespace stoch::models
