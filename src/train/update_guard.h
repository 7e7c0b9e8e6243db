// llm.c's guard against loss spikes: an optimiser step whose loss or gradient norm lies more
// than `z` standard deviations above the mean of the recent steps is skipped (its gradient is
// dropped), so one bad batch cannot throw the weights off. Skipped steps do not enter the
// window. Its state (the window) goes into checkpoints, so a resumed run decides alike.
#pragma once

#include <cstddef>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>

namespace stoch::train {

class UpdateGuard {
 public:
  // `window` recent steps; no step is skipped before `min_count` of them are in.
  explicit UpdateGuard(double z, size_t window = 128, size_t min_count = 16);

  // True when this step's update should be skipped; `why` then says which value and its z.
  // Otherwise the step's values join the window. A non-finite value is always skipped.
  bool skip(double loss, double grad_norm, std::string* why);

  nlohmann::json state() const;
  void load(const nlohmann::json& j);  // throws InputError when malformed

 private:
  double z_;
  size_t window_, min_count_;
  std::deque<double> losses_, norms_;
};

}  // namespace stoch::train
