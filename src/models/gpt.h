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

#include "core/config_schema.h"

namespace stoch::models {

struct GptConfig {
  int64_t vocab_size = 0;  // 0: taken from the data source
  int64_t context = 128;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  int64_t mlp_ratio = 4;
  std::string activation = "gelu";
  double dropout = 0.0;
  bool bias = true;
  std::string positions = "learned";
  std::string attention = "auto";
  double init_std = 0.02;
  std::string init_from;
  int64_t ce_chunk_rows = 0;

  // The model's parameter count, from the config alone (vocab_size resolved).
  int64_t parameter_count() const;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("vocab_size", vocab_size, "vocabulary size; 0 takes the data source's", Spec().at_least(0));
    v("context", context, "tokens the model sees (block size)", Spec().at_least(1));
    v("n_layer", n_layer, "transformer blocks", Spec().at_least(1));
    v("n_head", n_head, "attention heads (must divide d_model)", Spec().at_least(1));
    v("d_model", d_model, "residual stream width", Spec().at_least(1));
    v("mlp_ratio", mlp_ratio, "MLP hidden width as a multiple of d_model", Spec().at_least(1));
    v("activation", activation,
      "MLP nonlinearity: gelu (exact, erf) or gelu_tanh (its tanh approximation, GPT-2's gelu_new)",
      Spec().one_of({"gelu", "gelu_tanh"}));
    v("dropout", dropout, "dropout probability in attention and residual branches",
      Spec().at_least(0).at_most(0.99));
    v("bias", bias, "biases in linear layers and LayerNorms");
    v("positions", positions, "position encoding", Spec().one_of({"learned", "rotary"}));
    v("attention", attention,
      "attention kernel: auto (stoch's own on the CPU in float32 without attention dropout "
      "where they were measured faster than SDPA, else SDPA), stoch (stoch's own wherever they "
      "apply), sdpa (LibTorch's fused kernels), or plain (the masked-softmax reference)",
      Spec().one_of({"auto", "stoch", "sdpa", "plain"}));
    v("init_std", init_std, "std of the normal initialisation (GPT-2: 0.02)", Spec().above(0));
    v("init_from", init_from,
      "a GPT-2-format folder (config.json + model.safetensors: `stoch export`, save_pretrained) "
      "whose weights a fresh run starts from; the model keys must agree with it; empty: random");
    v("ce_chunk_rows", ce_chunk_rows,
      "training loss through the unembedding a chunk of this many positions at a time, never "
      "holding all float32 logits (0: full logits, then cross-entropy)",
      Spec().at_least(0));
  }
};

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
  explicit CausalSelfAttentionImpl(const GptConfig& cfg);
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
  explicit BlockImpl(const GptConfig& cfg);
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

class GptImpl : public torch::nn::Module {
 public:
  explicit GptImpl(GptConfig cfg);

  // Final hidden states h (after the last LayerNorm): [B, T, d_model]. T <= context.
  torch::Tensor hidden(const torch::Tensor& idx);
  // Next-token logits from hidden states: [B, T, vocab].
  torch::Tensor logits(const torch::Tensor& h);
  torch::Tensor forward(const torch::Tensor& idx) { return logits(hidden(idx)); }

  const GptConfig& config() const { return cfg_; }
  int64_t num_parameters(bool exclude_position_embedding = true) const;

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Norm ln_f{nullptr};

 private:
  void init_weights();
  GptConfig cfg_;
  torch::nn::Dropout drop_{nullptr};
  torch::Tensor rope_cos_, rope_sin_;
};
TORCH_MODULE(Gpt);

}  // namespace stoch::models
