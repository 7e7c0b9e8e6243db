// Torso "transformer": a [T, D] input read as T tokens, projected to d_model, with learned
// positions, pre-norm encoder blocks (bidirectional attention) and mean pooling.
#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "models/value_net.h"

namespace stoch::models {
namespace {

class EncoderBlockImpl : public torch::nn::Module {
 public:
  EncoderBlockImpl(int64_t d, int64_t heads) : heads_(heads) {
    ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    qkv = register_module("qkv", torch::nn::Linear(d, 3 * d));
    proj = register_module("proj", torch::nn::Linear(d, d));
    ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    fc = register_module("fc", torch::nn::Linear(d, 4 * d));
    fc_proj = register_module("fc_proj", torch::nn::Linear(4 * d, d));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2), hd = d / heads_;
    auto parts = qkv->forward(ln1->forward(x)).split(d, -1);
    auto shape = [&](const torch::Tensor& t) { return t.view({B, T, heads_, hd}).transpose(1, 2); };
    auto y = at::scaled_dot_product_attention(shape(parts[0]), shape(parts[1]), shape(parts[2]));
    auto h = x + proj->forward(y.transpose(1, 2).reshape({B, T, d}));
    return h + fc_proj->forward(torch::gelu(fc->forward(ln2->forward(h))));
  }
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc{nullptr}, fc_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(EncoderBlock);

class TransformerTorso : public Torso {
 public:
  TransformerTorso(const ValueNetConfig& cfg, const std::vector<int64_t>& shape) : d_(cfg.d_model) {
    embed_ = register_module("embed", torch::nn::Linear(shape[1], d_));
    pos_ = register_parameter("pos", torch::randn({shape[0], d_}) * 0.02);
    blocks_ = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.n_layer; ++i) blocks_->push_back(EncoderBlock(d_, cfg.n_head));
    ln_ = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_})));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto h = embed_->forward(x) + pos_;
    for (const auto& b : *blocks_) h = b->as<EncoderBlock>()->forward(h);
    return ln_->forward(h).mean(1);
  }
  int64_t features() const override { return d_; }

 private:
  int64_t d_;
  torch::nn::Linear embed_{nullptr};
  torch::Tensor pos_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
};

const bool registered = registry<TorsoEntry>().add(
    "transformer",
    {"a small bidirectional transformer over [T, D] inputs, mean-pooled",
     [](const ValueNetConfig& cfg, const std::vector<int64_t>& shape) -> std::shared_ptr<Torso> {
       if (shape.size() != 2)
         throw InputError(stoch::str("model.torso: transformer needs [T, D] inputs, got ",
                                     shape.size(), " dimensions"));
       if (cfg.norm != "none")
         throw InputError(stoch::str("model.norm: ", cfg.norm,
                                     " is for the mlp and cnn torsos; the transformer's blocks "
                                     "have their own LayerNorms"));
       if (cfg.d_model % cfg.n_head != 0)
         throw InputError(stoch::str("model.n_head: ", cfg.n_head,
                                     " does not divide model.d_model = ", cfg.d_model));
       return std::make_shared<TransformerTorso>(cfg, shape);
     }});

}  // namespace
}  // namespace stoch::models
