#include "core/torch/model_tensors.h"

#include <torch/torch.h>

#include <map>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch {

TensorList model_tensors(torch::nn::Module& model) {
  TensorList out;
  for (const auto& p : model.named_parameters()) out.emplace_back("param." + p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back("buffer." + b.key(), b.value());
  return out;
}

void load_model_tensors(torch::nn::Module& model, const TensorList& saved,
                        const std::string& origin) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : model_tensors(model)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw InputError(stoch::str(origin, ": no model tensor ", name));
    if (it->second.sizes() != dst.sizes())
      throw InputError(stoch::str(origin, ": tensor ", name, " has shape ", it->second.sizes(),
                                  " but the model expects ", dst.sizes(),
                                  " (was the model's config changed?)"));
    dst.copy_(it->second);
  }
}

}  // namespace stoch
