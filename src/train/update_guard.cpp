#include "train/update_guard.h"

#include <cmath>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {
namespace {

// z-score of x against `values`; 0 while the spread is zero (a constant series).
double z_score(const std::deque<double>& values, double x) {
  double mean = 0;
  for (const double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double var = 0;
  for (const double v : values) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / static_cast<double>(values.size()));
  return sd > 0 ? (x - mean) / sd : 0.0;
}

}  // namespace

UpdateGuard::UpdateGuard(double z, size_t window, size_t min_count)
    : z_(z), window_(window), min_count_(min_count) {}

bool UpdateGuard::skip(double loss, double grad_norm, std::string* why) {
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    if (why) *why = stoch::str("loss ", loss, ", gradient norm ", grad_norm);
    return true;
  }
  if (losses_.size() >= min_count_) {
    const double zl = z_score(losses_, loss), zg = z_score(norms_, grad_norm);
    if (zl > z_ || zg > z_) {
      if (why)
        *why = stoch::str(zl > z_ ? "loss " : "gradient norm ",
                          format_number(zl > z_ ? loss : grad_norm, 4), " is ",
                          format_number(zl > z_ ? zl : zg, 3),
                          " standard deviations above the recent mean");
      return true;
    }
  }
  losses_.push_back(loss);
  norms_.push_back(grad_norm);
  if (losses_.size() > window_) {
    losses_.pop_front();
    norms_.pop_front();
  }
  return false;
}

nlohmann::json UpdateGuard::state() const {
  return {{"losses", std::vector<double>(losses_.begin(), losses_.end())},
          {"grad_norms", std::vector<double>(norms_.begin(), norms_.end())}};
}

void UpdateGuard::load(const nlohmann::json& j) {
  try {
    const auto l = j.at("losses").get<std::vector<double>>();
    const auto n = j.at("grad_norms").get<std::vector<double>>();
    if (l.size() != n.size()) throw std::runtime_error("losses and grad_norms differ in length");
    losses_.assign(l.begin(), l.end());
    norms_.assign(n.begin(), n.end());
  } catch (const std::exception& e) {
    throw InputError(stoch::str("state.json: update_guard: ", e.what()));
  }
}

}  // namespace stoch::train
