// What every language-model architecture offers the task, the hooks, sampling and export, and
// the registry of architectures (config key model.arch). A second architecture is one file: a
// LanguageModelImpl subclass and register_language_model<M>(name, {doc, counts...}) at its end.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/config_schema.h"
#include "core/registry.h"

namespace stoch::models {

struct LmConfig;
class LanguageModelImpl;

struct LmArchEntry {
  std::string doc;
  // From the config alone, before building: the parameter count (memory estimate) ...
  std::function<int64_t(const LmConfig&)> parameter_count;
  // ... the FLOPs per token of a training step beyond 6 per parameter (attention's scores and
  // weighted sums: the throughput log's FLOPs and MFU) ...
  std::function<double(const LmConfig&)> extra_flops_per_token;
  // ... and the floats a backward pass keeps per token at least, all layers (memory estimate).
  std::function<double(const LmConfig&)> kept_floats_per_token;
  bool gpt2_format = false;  // `stoch export --format hf-gpt2` and model.init_from read/write it
  std::function<std::shared_ptr<LanguageModelImpl>(const LmConfig&)> make;  // filled by register
};

// The `model` section of the lm task.
struct LmConfig {
  std::string arch = "gpt";
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

  // The model's parameter count, from the config alone (vocab_size resolved), as its
  // architecture's entry counts it.
  int64_t parameter_count() const;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("arch", arch,
      "architecture (models/language_model.h); the keys below are GPT's, and "
      "another architecture documents which of them it reads",
      Spec().one_of(registry<LmArchEntry>().names()));
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

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(LmConfig cfg) : cfg_(std::move(cfg)) {}

  // Final hidden states h (after the last norm): [B, T, d_model]. T <= context.
  virtual torch::Tensor hidden(const torch::Tensor& idx) = 0;
  // Next-token logits from hidden states: [B, T, vocab].
  virtual torch::Tensor logits(const torch::Tensor& h) = 0;
  torch::Tensor forward(const torch::Tensor& idx) { return logits(hidden(idx)); }
  // Token embeddings e(x): [..., d_model] for ids [...] (what the surplus probe reads).
  virtual torch::Tensor embed(const torch::Tensor& ids) = 0;
  // The [vocab, d_model] matrix logits() multiplies h by; the chunked loss and the hooks use it
  // directly, so logits(h) must equal h unembedding()^T.
  virtual torch::Tensor unembedding() const = 0;
  // Trained parameters, without lookup tables that are not products (learned positions) when
  // asked: the N of 6N FLOPs per token.
  virtual int64_t num_parameters(bool exclude_position_embedding = true) const = 0;
  // Its shape in a few words, for the log.
  virtual std::string describe() const {
    return "d_model " + std::to_string(cfg_.d_model) + ", context " + std::to_string(cfg_.context);
  }

  const LmConfig& config() const { return cfg_; }
  torch::Device device() const { return unembedding().device(); }

 protected:
  LmConfig cfg_;
};

// Registers architecture M (constructible from an LmConfig) under `name`; `entry` leaves make
// empty.
template <class M>
bool register_language_model(const std::string& name, LmArchEntry entry) {
  if (!entry.parameter_count || !entry.extra_flops_per_token || !entry.kept_floats_per_token)
    throw std::invalid_argument("register_language_model(\"" + name +
                                "\"): parameter_count, extra_flops_per_token and "
                                "kept_floats_per_token are required");
  entry.make = [](const LmConfig& c) -> std::shared_ptr<LanguageModelImpl> {
    return std::make_shared<M>(c);
  };
  return registry<LmArchEntry>().add(name, std::move(entry));
}

// The architecture cfg.arch names, built from cfg (vocab_size resolved).
std::shared_ptr<LanguageModelImpl> make_language_model(const LmConfig& cfg);

}  // namespace stoch::models
