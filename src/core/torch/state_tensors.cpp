#include "core/torch/state_tensors.h"

#include <torch/torch.h>

#include <cstring>
#include <type_traits>

#include "core/errors.h"

namespace stoch {

const at::Tensor* find_tensor(const TensorList& list, const std::string& name) {
  for (const auto& [n, t] : list)
    if (n == name) return &t;
  return nullptr;
}

const at::Tensor& tensor_named(const TensorList& list, const std::string& name,
                               const std::string& what) {
  if (const auto* t = find_tensor(list, name)) return *t;
  throw InputError(what + ": no tensor " + name + " in the checkpoint");
}

at::Tensor rng_to_tensor(const Rng& rng) {
  static_assert(std::is_trivially_copyable<Rng>::value && sizeof(Rng) == 4 * sizeof(int64_t),
                "Rng is four plain words");
  auto words = torch::empty({4}, torch::kLong);
  std::memcpy(words.data_ptr<int64_t>(), &rng, sizeof(Rng));
  return words;
}

Rng rng_from_tensor(const at::Tensor& words, const std::string& what) {
  if (words.scalar_type() != torch::kLong || words.numel() != 4)
    throw InputError(what + ": a random stream is 4 int64 words, got " +
                     std::to_string(words.numel()) + " of another type or count");
  Rng rng(0);
  std::memcpy(static_cast<void*>(&rng), words.contiguous().data_ptr<int64_t>(), sizeof(Rng));
  return rng;
}

at::Tensor bytes_to_tensor(const std::string& bytes) {
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_to_bytes(const at::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<size_t>(c.numel()));
}

}  // namespace stoch
