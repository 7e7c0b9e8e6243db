#include "models/gpt.h"

#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "core/strings.h"
#include "models/causal_attention.h"

namespace stoch::models {
namespace {

Norm make_norm(const LmConfig& cfg) {
  return Norm(cfg.d_model, cfg.bias);
}

// Rotary embedding on [B, H, T, D] with the half-split pairing (x_i, x_{i + D/2}).
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  const int64_t T = x.size(2), half = x.size(3) / 2;
  auto c = cos.slice(0, 0, T), s = sin.slice(0, 0, T);  // [T, D/2]
  auto x1 = x.slice(-1, 0, half), x2 = x.slice(-1, half, 2 * half);
  return torch::cat({x1 * c - x2 * s, x1 * s + x2 * c}, -1);
}

}  // namespace

NormImpl::NormImpl(int64_t dim, bool with_bias) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, 1e-5);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const LmConfig& cfg)
    : n_head_(cfg.n_head),
      d_model_(cfg.d_model),
      dropout_(cfg.dropout),
      attention_(cfg.attention),
      // Decided once per model, so that every step of a run (and its resume) runs one kernel.
      host_kernels_(host_attention_selected(cfg.attention, cfg.context)) {
  qkv = register_module(
      "qkv",
      torch::nn::Linear(torch::nn::LinearOptions(cfg.d_model, 3 * cfg.d_model).bias(cfg.bias)));
  proj = register_module(
      "proj", torch::nn::Linear(torch::nn::LinearOptions(cfg.d_model, cfg.d_model).bias(cfg.bias)));
  resid_drop_ = register_module("resid_drop", torch::nn::Dropout(cfg.dropout));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x,
                                               const torch::Tensor& rope_cos,
                                               const torch::Tensor& rope_sin) {
  const int64_t B = x.size(0), T = x.size(1), hd = d_model_ / n_head_;
  auto parts = qkv->forward(x).split(d_model_, -1);
  auto q = parts[0].view({B, T, n_head_, hd}).transpose(1, 2);
  auto k = parts[1].view({B, T, n_head_, hd}).transpose(1, 2);
  auto v = parts[2].view({B, T, n_head_, hd}).transpose(1, 2);
  if (rope_cos.defined()) {
    q = apply_rotary(q, rope_cos, rope_sin);
    k = apply_rotary(k, rope_cos, rope_sin);
  }
  const double p = is_training() ? dropout_ : 0.0;
  torch::Tensor y;
  if (host_kernels_ && p == 0.0 && causal_attention_host_supported(q)) {
    y = causal_attention_host(q, k, v);
  } else if (attention_ != "plain") {
    y = at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/true);
  } else {
    auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
    auto mask =
        torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(x.device())).triu(1);
    att = torch::softmax(att.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
    if (p > 0) att = torch::dropout(att, p, true);
    y = torch::matmul(att, v);
  }
  y = y.transpose(1, 2).contiguous().view({B, T, d_model_});
  return resid_drop_->forward(proj->forward(y));
}

BlockImpl::BlockImpl(const LmConfig& cfg)
    : gelu_approximate_(cfg.activation == "gelu_tanh" ? "tanh" : "none") {
  ln1 = register_module("ln1", make_norm(cfg));
  attn = register_module("attn", CausalSelfAttention(cfg));
  ln2 = register_module("ln2", make_norm(cfg));
  const int64_t hidden = cfg.mlp_ratio * cfg.d_model;
  fc = register_module(
      "fc", torch::nn::Linear(torch::nn::LinearOptions(cfg.d_model, hidden).bias(cfg.bias)));
  fc_proj = register_module(
      "fc_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, cfg.d_model).bias(cfg.bias)));
  drop = register_module("drop", torch::nn::Dropout(cfg.dropout));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& rope_cos,
                                 const torch::Tensor& rope_sin) {
  auto h = x + attn->forward(ln1->forward(x), rope_cos, rope_sin);
  const auto a = torch::gelu(fc->forward(ln2->forward(h)), gelu_approximate_);
  return h + drop->forward(fc_proj->forward(a));
}

GptImpl::GptImpl(LmConfig cfg) : LanguageModelImpl(std::move(cfg)) {
  if (cfg_.vocab_size < 1)
    throw InputError("model.vocab_size: expected >= 1 once the data source is known");
  if (cfg_.d_model % cfg_.n_head != 0)
    throw InputError(stoch::str("model.n_head: ", cfg_.n_head,
                                " does not divide model.d_model = ", cfg_.d_model));
  const int64_t hd = cfg_.d_model / cfg_.n_head;
  if (cfg_.positions == "rotary" && hd % 2 != 0)
    throw InputError(
        stoch::str("model.positions: rotary needs an even head width, got d_model/n_head = ", hd));

  wte = register_module("wte", torch::nn::Embedding(cfg_.vocab_size, cfg_.d_model));
  if (cfg_.positions == "learned") {
    wpe = register_module("wpe", torch::nn::Embedding(cfg_.context, cfg_.d_model));
  } else {
    auto inv =
        torch::pow(10000.0, -torch::arange(0, hd, 2, torch::kDouble) / static_cast<double>(hd));
    auto ang = torch::outer(torch::arange(cfg_.context, torch::kDouble), inv);
    rope_cos_ = register_buffer("rope_cos", ang.cos().to(torch::kFloat));
    rope_sin_ = register_buffer("rope_sin", ang.sin().to(torch::kFloat));
  }
  drop_ = register_module("drop", torch::nn::Dropout(cfg_.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.n_layer; ++i) blocks->push_back(Block(cfg_));
  ln_f = register_module("ln_f", make_norm(cfg_));
  init_weights();
}

void GptImpl::init_weights() {
  torch::NoGradGuard no_grad;
  const double resid_std = cfg_.init_std / std::sqrt(2.0 * static_cast<double>(cfg_.n_layer));
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (name.find("ln") != std::string::npos) {
      if (is_bias)
        p.zero_();
      else
        p.fill_(1.0);
    } else if (is_bias) {
      p.zero_();
    } else if (name.find("proj.weight") != std::string::npos) {
      // Residual-branch outputs scaled down by depth (GPT-2), so the stream's variance stays put.
      p.normal_(0.0, resid_std);
    } else {
      p.normal_(0.0, cfg_.init_std);
    }
  }
}

torch::Tensor GptImpl::hidden(const torch::Tensor& idx) {
  const int64_t T = idx.size(1);
  TORCH_CHECK(T <= cfg_.context, "sequence of ", T,
              " tokens exceeds model.context = ", cfg_.context);
  auto x = wte->forward(idx);
  if (wpe)
    x = x + wpe->forward(
                torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(idx.device())));
  x = drop_->forward(x);
  for (const auto& b : *blocks) x = b->as<Block>()->forward(x, rope_cos_, rope_sin_);
  return ln_f->forward(x);
}

torch::Tensor GptImpl::logits(const torch::Tensor& h) {
  return torch::matmul(h, wte->weight.t());
}

namespace {

int64_t gpt_parameter_count(const LmConfig& c) {
  const int64_t d = c.d_model, h = c.mlp_ratio * c.d_model, norm = c.bias ? 2 * d : d;
  const int64_t block = 2 * norm + 3 * d * d + d * d + 2 * h * d + (c.bias ? 3 * d + d + h + d : 0);
  // Tied embeddings: the unembedding is wte.
  return c.vocab_size * d + (c.positions == "learned" ? c.context * d : 0) + c.n_layer * block +
         norm;
}

// PaLM's count (appendix B), as nanoGPT and llm.c use it: 12 L d T FLOPs per token for
// attention's scores and weighted sums, forward and backward.
double gpt_attention_flops(const LmConfig& c) {
  return 12.0 * static_cast<double>(c.n_layer * c.d_model * c.context);
}

// Per layer and position a backward pass keeps at least the block's inputs and outputs of its
// products (ln1, qkv, attention, projection, ln2, the MLP's two widths); attention scores and
// LibTorch's workspaces come on top.
double gpt_kept_floats(const LmConfig& c) {
  return static_cast<double>(c.n_layer) * (7 + 2 * static_cast<double>(c.mlp_ratio)) *
         static_cast<double>(c.d_model);
}

const bool registered = register_language_model<GptImpl>(
    "gpt", {"GPT-2-style decoder: pre-norm blocks, GELU MLP, tied embeddings", gpt_parameter_count,
            gpt_attention_flops, gpt_kept_floats, /*gpt2_format=*/true});

}  // namespace

int64_t GptImpl::num_parameters(bool exclude_position_embedding) const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  if (exclude_position_embedding && wpe) n -= wpe->weight.numel();
  return n;
}

}  // namespace stoch::models
