#include "models/plain_stack.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <stdexcept>

#include "core/torch/lane.h"
#include "models/kernels/conv3x3.h"

namespace stoch::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kConv = 0, kLinear = 1;

bool is_tanh(const std::string& activation) {
  return activation == "tanh";
}

// In place on a fresh pre-activation.
void activate_(torch::Tensor& z, bool tanh) {
  if (tanh)
    z.tanh_();
  else
    z.relu_();
}

// Gradient through the activation from its output (relu: out > 0 exactly where the input was).
torch::Tensor activation_backward(const torch::Tensor& g, const torch::Tensor& out, bool tanh) {
  return tanh ? at::tanh_backward(g, out) : at::threshold_backward(g, out, 0);
}

// [B, C, H, W] -> columns [B, C*9, L] of a 3x3, stride-1 convolution. ATen's im2col walks
// the batch through per-sample tensor views, which costs more than the products it feeds at
// MinAtar's sizes; this is the same layout as one pass of plain loops (CPU float32).
torch::Tensor im2col3x3(const torch::Tensor& x, int64_t pad) {
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat)
    return at::im2col(x, {3, 3}, {1, 1}, {pad, pad}, {1, 1});
  const auto in = x.contiguous();
  const int64_t B = in.size(0), C = in.size(1), H = in.size(2), W = in.size(3);
  const int64_t OH = H + 2 * pad - 2, OW = W + 2 * pad - 2, L = OH * OW;
  auto cols = torch::empty({B, C * 9, L}, in.options());
  const float* src = in.data_ptr<float>();
  float* dst = cols.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = src + (b * C + c) * H * W;
      for (int64_t k = 0; k < 9; ++k) {
        const int64_t dy = k / 3 - pad, dx = k % 3 - pad;
        float* row = dst + ((b * C + c) * 9 + k) * L;
        // Output columns ox read input column ox + dx; those in [lo, hi) are inside.
        const int64_t lo = std::max<int64_t>(0, -dx), hi = std::min<int64_t>(OW, W - dx);
        for (int64_t oy = 0; oy < OH; ++oy) {
          const int64_t y = oy + dy;
          float* out = row + oy * OW;
          if (y < 0 || y >= H || lo >= hi) {
            std::fill(out, out + OW, 0.0f);
            continue;
          }
          std::fill(out, out + lo, 0.0f);
          std::copy(plane + y * W + lo + dx, plane + y * W + hi + dx, out + lo);
          std::fill(out + hi, out + OW, 0.0f);
        }
      }
    }
  return cols;
}

// One layer's forward. A convolution is im2col then one batched product, so that its backward
// needs nothing but the same columns: [B, C*9, L] -> [B, O, L], kept in the [c, h, w] order
// that flattening the module's [B, O, H, W] output gives.
// The first layer's input needs no gradient, so a convolution there runs straight from the
// image (conv3x3.h) and keeps the image itself for its backward.
struct Step {
  torch::Tensor input;   // linear: [B, in]; conv: the columns [B, C*9, L], or the image
  torch::Tensor output;  // after the activation; linear [B, O], conv [B, O, L]
};

bool is_image(const torch::Tensor& conv_input) {
  return conv_input.dim() == 4;
}

Step run_layer(const torch::Tensor& h, int64_t kind, const torch::Tensor& w, const torch::Tensor& b,
               int64_t padding, bool act, bool tanh, bool first) {
  Step s;
  if (kind == kConv && first && conv3x3_direct_supported(h)) {
    s.input = h;
    s.output = conv3x3_forward(h, w, b, padding);
  } else if (kind == kConv) {
    const int64_t B = h.size(0), O = w.size(0);
    s.input = im2col3x3(h, padding);
    s.output = at::bmm(w.view({1, O, -1}).expand({B, O, w.numel() / O}), s.input);
    s.output.add_(b.view({1, O, 1}));
  } else {
    s.input = h.dim() == 2 ? h : h.flatten(1);
    s.output = at::addmm(b, s.input, w.t());
  }
  if (act) activate_(s.output, tanh);
  return s;
}

// The shape layer l's output has as the next layer's input: conv outputs are images again.
torch::Tensor as_image(const torch::Tensor& out, int64_t h, int64_t w) {
  return out.view({out.size(0), out.size(1), h, w});
}

struct Shapes {
  std::vector<int64_t> kinds, paddings, acts, heights, widths;  // heights/widths: conv inputs
};

Shapes shapes_of(const std::vector<PlainLayer>& layers, const torch::Tensor& x) {
  Shapes s;
  int64_t h = x.dim() == 4 ? x.size(2) : 0, w = x.dim() == 4 ? x.size(3) : 0;
  for (const auto& l : layers) {
    const bool conv = l.kind == PlainLayer::Kind::kConv3x3;
    s.kinds.push_back(conv ? kConv : kLinear);
    s.paddings.push_back(l.padding);
    s.acts.push_back(l.activate ? 1 : 0);
    s.heights.push_back(h);
    s.widths.push_back(w);
    if (conv) {
      h += 2 * l.padding - 2;
      w += 2 * l.padding - 2;
    }
  }
  return s;
}

torch::Tensor run_forward(const Shapes& s, const at::TensorList params, const torch::Tensor& x,
                          bool tanh, std::vector<Step>* keep) {
  torch::Tensor h = x;
  for (size_t l = 0; l < s.kinds.size(); ++l) {
    Step st = run_layer(h, s.kinds[l], params[2 * l], params[2 * l + 1], s.paddings[l],
                        s.acts[l] != 0, tanh, l == 0);
    const bool next_is_conv = l + 1 < s.kinds.size() && s.kinds[l + 1] == kConv;
    h = next_is_conv ? as_image(st.output, s.heights[l + 1], s.widths[l + 1]) : st.output;
    if (keep) keep->push_back(std::move(st));
  }
  return s.kinds.back() == kConv ? h.flatten(1) : h;
}

struct PlainStackFn : public torch::autograd::Function<PlainStackFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, at::TensorList params,
                               const Shapes& s, bool tanh, Lane* lane) {
    std::vector<Step> steps;
    auto out = run_forward(s, params, x, tanh, &steps);
    std::vector<torch::Tensor> saved(params.begin(), params.end());
    for (auto& st : steps) {
      saved.push_back(st.input);
      saved.push_back(st.output);
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["kinds"] = s.kinds;
    ctx->saved_data["paddings"] = s.paddings;
    ctx->saved_data["acts"] = s.acts;
    ctx->saved_data["heights"] = s.heights;
    ctx->saved_data["widths"] = s.widths;
    ctx->saved_data["tanh"] = tanh;
    // saved_data holds IValues only: the lane goes in as its address. Its owner (the trainer)
    // keeps it for the whole run, past every backward of the run's graphs.
    ctx->saved_data["lane"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(lane));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto kinds = ctx->saved_data["kinds"].toIntVector();
    const auto paddings = ctx->saved_data["paddings"].toIntVector();
    const auto acts = ctx->saved_data["acts"].toIntVector();
    const auto heights = ctx->saved_data["heights"].toIntVector();
    const auto widths = ctx->saved_data["widths"].toIntVector();
    const bool tanh = ctx->saved_data["tanh"].toBool();
    const size_t n = kinds.size(), np = 2 * n;

    // x (never needs one), weight and bias per layer, then the three non-tensor arguments.
    variable_list grads(1 + np + 3);
    // Weight gradients need nothing the next layer down waits for: with a helper lane they
    // run there, beside the chain of input gradients.
    Lane* lane = reinterpret_cast<Lane*>(static_cast<intptr_t>(ctx->saved_data["lane"].toInt()));
    LaneJoin join(lane);  // whatever happens here, no job outlives the tensors it reads
    // The first layer's weight gradient stays here: nothing else is left to do beside it.
    auto weight_grad = [&](std::function<void()> job, size_t layer) {
      if (lane && layer > 0)
        lane->start(std::move(job));
      else
        job();
    };
    torch::Tensor g = grad_outputs[0];
    for (size_t l = n; l-- > 0;) {
      const auto& w = saved[2 * l];
      const auto& input = saved[np + 2 * l];
      const auto& output = saved[np + 2 * l + 1];
      g = g.view(output.sizes());
      if (acts[l]) g = activation_backward(g, output, tanh);
      auto& gw = grads[1 + 2 * l];
      if (kinds[l] == kLinear) {
        weight_grad([&gw, g, &input] { gw = g.t().mm(input); }, l);
        grads[2 + 2 * l] = g.sum(0);
        if (l > 0) g = g.mm(w);
      } else {
        // Summed over the batch in two fixed halves, with or without a lane, so that the
        // first layer's (often the last job left) can be shared between the two threads.
        const int64_t half = g.size(0) / 2;
        const int64_t pad = paddings[l];
        auto part = [g, &input, pad](int64_t a, int64_t b) {
          if (is_image(input)) return conv3x3_weight_grad(input, g, pad, a, b);
          return at::bmm(g.slice(0, a, b), input.slice(0, a, b).transpose(1, 2)).sum(0);
        };
        torch::Tensor first, second;
        run_side_by_side(
            lane, [&] { first = part(0, half); }, [&] { second = part(half, g.size(0)); });
        gw = first.add_(second).view(w.sizes());
        grads[2 + 2 * l] = g.sum(at::IntArrayRef{0, 2});
        if (l > 0) {
          const int64_t O = w.size(0);
          const auto cols = at::matmul(w.view({O, -1}).t(), g);
          g = at::col2im(cols, {heights[l], widths[l]}, {3, 3}, {1, 1}, {paddings[l], paddings[l]},
                         {1, 1});
        }
      }
    }
    if (lane) lane->wait();
    return grads;
  }
};

}  // namespace

bool plain_activation_supported(const std::string& activation) {
  return activation == "relu" || activation == "tanh";
}

torch::Tensor plain_stack_forward(const std::vector<PlainLayer>& layers,
                                  const std::string& activation, const torch::Tensor& x,
                                  Lane* lane) {
  if (layers.empty() || !plain_activation_supported(activation) || x.requires_grad())
    throw std::logic_error("plain_stack_forward: not a plain stack this backward knows");
  std::vector<torch::Tensor> params;
  bool needs_grad = false;
  for (const auto& l : layers) {
    params.push_back(l.weight);
    params.push_back(l.bias);
    needs_grad = needs_grad || l.weight.requires_grad() || l.bias.requires_grad();
  }
  const Shapes s = shapes_of(layers, x);
  const bool tanh = is_tanh(activation);
  if (!needs_grad || !torch::GradMode::is_enabled())
    return run_forward(s, params, x, tanh, nullptr);
  return PlainStackFn::apply(x, at::TensorList(params), s, tanh, lane);
}

}  // namespace stoch::models
