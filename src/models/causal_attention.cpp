#include "models/causal_attention.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>

#include "models/kernels/causal_attention_kernels.h"

namespace stoch::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// First element of head (b, h) of a [B, H, ...] tensor.
float* head_start(const torch::Tensor& x, int64_t b, int64_t h) {
  return x.data_ptr<float>() + b * x.stride(0) + h * x.stride(1);
}

// Rows of head (b, h) of a [B, H, T, D] tensor.
HeadRows head_rows(const torch::Tensor& x, int64_t b, int64_t h) {
  return {head_start(x, b, h), x.stride(2)};
}

torch::Tensor rows_contiguous(const torch::Tensor& x) {
  return x.stride(3) == 1 ? x : x.contiguous();
}

// An uninitialised [B, H, T, D] tensor over [B, T, H, D] memory.
torch::Tensor empty_heads(const torch::Tensor& like) {
  return torch::empty({like.size(0), like.size(2), like.size(1), like.size(3)}, like.options())
      .transpose(1, 2);
}

// Calls f(b, h, scratch) for every head, heads split between LibTorch's threads.
template <class F>
void for_each_head(int64_t B, int64_t H, const F& f) {
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    AttentionScratch scratch;
    for (int64_t bh = begin; bh < end; ++bh) f(bh / H, bh % H, scratch);
  });
}

struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in) {
    const auto q = rows_contiguous(q_in), k = rows_contiguous(k_in), v = rows_contiguous(v_in);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    auto o = empty_heads(q);
    auto lse = torch::empty({B, H, T}, q.options());
    for_each_head(B, H, [&](int64_t b, int64_t h, AttentionScratch& scratch) {
      causal_attention_head_forward(head_rows(q, b, h), head_rows(k, b, h), head_rows(v, b, h), T,
                                    D, scale, head_start(o, b, h), o.stride(2),
                                    head_start(lse, b, h), scratch);
    });
    ctx->save_for_backward({q, k, v, o, lse});
    return o;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &o = saved[3], &lse = saved[4];
    const auto grad_o = rows_contiguous(grad_outputs[0]);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    auto grad_q = empty_heads(q), grad_k = empty_heads(q), grad_v = empty_heads(q);
    for_each_head(B, H, [&](int64_t b, int64_t h, AttentionScratch& scratch) {
      causal_attention_head_backward(
          head_rows(q, b, h), head_rows(k, b, h), head_rows(v, b, h), head_rows(o, b, h),
          head_rows(grad_o, b, h), head_start(lse, b, h), T, D, scale, head_start(grad_q, b, h),
          head_start(grad_k, b, h), head_start(grad_v, b, h), grad_q.stride(2), scratch);
    });
    return {grad_q, grad_k, grad_v};
  }
};

}  // namespace

bool causal_attention_host_supported(const torch::Tensor& q) {
  return q.device().is_cpu() && q.scalar_type() == torch::kFloat && q.dim() == 4 &&
         q.size(2) >= 1 && q.size(2) <= kHostAttentionMaxContext &&
         causal_attention_head_dim_supported(q.size(3));
}

torch::Tensor causal_attention_host(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v) {
  return CausalAttentionFn::apply(q, k, v);
}

bool host_attention_preferred(CpuIsa isa, int64_t context) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return true;
    case CpuIsa::kAvx2:
      return context <= 512;
    case CpuIsa::kPortable:
      break;
  }
  return false;
}

bool host_attention_selected(const std::string& setting, int64_t context) {
  return setting == "stoch" || (setting == "auto" && host_attention_preferred(cpu_isa(), context));
}

std::string describe_attention(const std::string& setting, bool cpu_float32, bool dropout,
                               int64_t context, int64_t head_dim) {
  if (setting == "plain") return "attention: plain (masked softmax, model.attention=plain)";
  if (setting == "sdpa") return "attention: sdpa (model.attention=sdpa)";
  const std::string clone = cpu_isa_name(cpu_isa());
  std::string why;
  if (!cpu_float32)
    why = "stoch kernels take float32 on the CPU only";
  else if (context > kHostAttentionMaxContext || !causal_attention_head_dim_supported(head_dim))
    why = "stoch kernels take head widths 16, 32, ..., 128 and contexts up to 1024";
  else if (!host_attention_selected(setting, context))
    why =
        "stoch kernels slower on this CPU: " + clone + " clone, context " + std::to_string(context);
  if (!why.empty()) return "attention: sdpa (" + why + ")";
  // Dropout applies in training steps only: evaluation and sampling still take the kernels.
  if (dropout)
    return "attention: sdpa in training steps (stoch kernels have no attention dropout), stoch "
           "kernels (" +
           clone + ") in evaluation and sampling";
  return "attention: stoch kernels (" + clone + ")";
}

}  // namespace stoch::models
