#include "hooks/ngram_counts.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/strings.h"
#include "core/torch/state_tensors.h"

namespace stoch::hooks {

NgramCounts::NgramCounts(int64_t context, int64_t vocab) : c_(context), v_(vocab), contexts_(1) {
  for (int64_t j = 0; j < c_; ++j) contexts_ *= static_cast<double>(v_);
  // context * V + next must fit the 64-bit key: V^(c + 1) < 2^63.
  if (contexts_ * static_cast<double>(v_) >= 9.2e18)
    throw InputError(stoch::str("hooks: surplus: a vocabulary of ", v_, " tokens has too many ",
                                c_ + 1,
                                "-grams for the baseline's 64-bit keys; lower the hook's "
                                "horizon"));
}

uint64_t NgramCounts::context_key(const int32_t* ctx) const {
  uint64_t k = 0;
  for (int64_t j = 0; j < c_; ++j)
    k = k * static_cast<uint64_t>(v_) + static_cast<uint64_t>(ctx[j]);
  return k;
}

void NgramCounts::add(const int32_t* ctx, int32_t next) {
  const uint64_t context = context_key(ctx);
  pairs_[context * static_cast<uint64_t>(v_) + static_cast<uint64_t>(next)] += 1.0;
  totals_[context] += 1.0;
}

double NgramCounts::log_prob(const int32_t* ctx, int32_t next, double alpha) const {
  const uint64_t context = context_key(ctx);
  const auto pair = pairs_.find(context * static_cast<uint64_t>(v_) + static_cast<uint64_t>(next));
  const auto total = totals_.find(context);
  const double count = pair == pairs_.end() ? 0.0 : pair->second;
  const double all = total == totals_.end() ? 0.0 : total->second;
  return std::log((count + alpha) / (all + alpha * static_cast<double>(v_)));
}

TensorList NgramCounts::state(const std::string& prefix) const {
  std::vector<std::pair<uint64_t, double>> entries(pairs_.begin(), pairs_.end());
  std::sort(entries.begin(), entries.end());
  const auto n = static_cast<int64_t>(entries.size());
  auto contexts = torch::empty({n}, torch::kLong), next = torch::empty({n}, torch::kLong);
  auto counts = torch::empty({n}, torch::kDouble);
  auto* c = contexts.data_ptr<int64_t>();
  auto* t = next.data_ptr<int64_t>();
  auto* k = counts.data_ptr<double>();
  const auto V = static_cast<uint64_t>(v_);
  for (int64_t i = 0; i < n; ++i) {
    c[i] = static_cast<int64_t>(entries[i].first / V);
    t[i] = static_cast<int64_t>(entries[i].first % V);
    k[i] = entries[i].second;
  }
  return {{prefix + "contexts", contexts}, {prefix + "next", next}, {prefix + "counts", counts}};
}

void NgramCounts::add_count(uint64_t context, int64_t next, double count, const std::string& what) {
  if (next < 0 || next >= v_ || static_cast<double>(context) >= contexts_ || !(count >= 0) ||
      !std::isfinite(count))
    throw InputError(stoch::str(what, ": an n-gram count outside the vocabulary of ", v_,
                                " (context ", context, ", token ", next, ", count ", count, ")"));
  if (count == 0) return;
  pairs_[context * static_cast<uint64_t>(v_) + static_cast<uint64_t>(next)] += count;
  totals_[context] += count;
}

void NgramCounts::load(const TensorList& saved, const std::string& prefix,
                       const std::string& what) {
  pairs_.clear();
  totals_.clear();
  if (const at::Tensor* keys = find_tensor(saved, prefix + "keys")) {
    // The dense form: a row of V counts and their total per context.
    const auto rows = tensor_named(saved, prefix + "counts", what).to(torch::kDouble).contiguous();
    if (keys->dim() != 1 || rows.dim() != 2 || rows.size(0) != keys->size(0) ||
        rows.size(1) != v_ + 1)
      throw InputError(
          stoch::str(what, ": ", prefix, "counts is not [", keys->numel(), ", ", v_ + 1, "]"));
    const auto k = keys->to(torch::kLong).contiguous();
    const auto* key = k.data_ptr<int64_t>();
    for (int64_t i = 0; i < k.size(0); ++i) {
      if (key[i] < 0) throw InputError(stoch::str(what, ": a negative n-gram context"));
      const double* row = rows[i].data_ptr<double>();
      for (int64_t t = 0; t < v_; ++t) add_count(static_cast<uint64_t>(key[i]), t, row[t], what);
    }
    return;
  }
  const auto contexts =
      tensor_named(saved, prefix + "contexts", what).to(torch::kLong).contiguous();
  const auto next = tensor_named(saved, prefix + "next", what).to(torch::kLong).contiguous();
  const auto counts = tensor_named(saved, prefix + "counts", what).to(torch::kDouble).contiguous();
  if (contexts.dim() != 1 || next.sizes() != contexts.sizes() || counts.sizes() != contexts.sizes())
    throw InputError(stoch::str(what, ": ", prefix, "contexts, next and counts differ in shape"));
  const auto* c = contexts.data_ptr<int64_t>();
  const auto* t = next.data_ptr<int64_t>();
  const auto* k = counts.data_ptr<double>();
  for (int64_t i = 0; i < contexts.numel(); ++i) {
    if (c[i] < 0) throw InputError(stoch::str(what, ": a negative n-gram context"));
    add_count(static_cast<uint64_t>(c[i]), t[i], k[i], what);
  }
}

}  // namespace stoch::hooks
