// Counts of a token after the c tokens before it, for the surplus hook's n-gram baseline. Kept
// sparse: a dense row per context is V doubles, and with a real vocabulary (GPT-2's 50,257
// tokens) a bigram table of dense rows grew by 400 KB per context seen.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/torch/safetensors.h"

namespace stoch::hooks {

class NgramCounts {
 public:
  NgramCounts(int64_t context, int64_t vocab);

  void add(const int32_t* ctx, int32_t next);
  // log of the add-alpha smoothed estimate of P(next | ctx).
  double log_prob(const int32_t* ctx, int32_t next, double alpha) const;

  // As tensors under `prefix`: "contexts", "next" (int64) and "counts" (float64), one entry per
  // (context, token) pair seen, sorted, so that equal tables save equal bytes.
  TensorList state(const std::string& prefix) const;
  // From state(); also reads the dense form earlier versions saved ("keys" [rows] and "counts"
  // [rows, V + 1], each row's total last). InputError naming `what` on a malformed state.
  void load(const TensorList& saved, const std::string& prefix, const std::string& what);

 private:
  uint64_t context_key(const int32_t* ctx) const;
  void add_count(uint64_t context, int64_t next, double count, const std::string& what);

  int64_t c_, v_;
  double contexts_;  // V^c, the number of contexts: keys of contexts lie below it
  std::unordered_map<uint64_t, double> pairs_;   // context * V + next -> count
  std::unordered_map<uint64_t, double> totals_;  // context -> count of every next token
};

}  // namespace stoch::hooks
