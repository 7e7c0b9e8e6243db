#include "analysis/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/rng.h"

namespace stoch::analysis {
namespace {

void check_tasks(const TaskScores& scores, const char* what) {
  if (scores.empty()) throw std::invalid_argument(std::string(what) + ": no tasks");
  for (const auto& task : scores)
    if (task.empty()) throw std::invalid_argument(std::string(what) + ": a task has no runs");
}

// One stratified resample: every task keeps its size, its runs drawn with replacement.
void resample(const TaskScores& scores, Rng& rng, TaskScores& out) {
  out.resize(scores.size());
  for (size_t t = 0; t < scores.size(); ++t) {
    const auto& runs = scores[t];
    out[t].resize(runs.size());
    for (auto& v : out[t]) v = runs[rng.below(runs.size())];
  }
}

double percentile_of_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double h = static_cast<double>(sorted.size() - 1) * (q / 100.0);
  const size_t i = std::min(static_cast<size_t>(std::floor(h)), sorted.size() - 1);
  const size_t j = std::min(i + 1, sorted.size() - 1);
  const double t = h - static_cast<double>(i), a = sorted[i], b = sorted[j];
  // numpy's _lerp: interpolate from the nearer end so that t = 1 gives b exactly.
  return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);
}

// arch's conf_int(method="percentile"): the alpha/2 and 1 - alpha/2 percentiles.
Interval percentile_interval(std::vector<double> replicates, double confidence) {
  const double alpha = (1.0 - confidence) / 2;
  std::sort(replicates.begin(), replicates.end());
  return {percentile_of_sorted(replicates, 100 * alpha),
          percentile_of_sorted(replicates, 100 * (1 - alpha))};
}

}  // namespace

double iqm(std::vector<double> scores) {
  const size_t n = scores.size();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  // scipy's trim_mean cuts int(0.25 * n) from each end; 0.25 * n is exact, so this is n / 4.
  const size_t cut = n / 4;
  std::sort(scores.begin(), scores.end());
  double sum = 0;
  for (size_t i = cut; i < n - cut; ++i) sum += scores[i];
  return sum / static_cast<double>(n - 2 * cut);
}

double aggregate_iqm(const TaskScores& scores_by_task) {
  std::vector<double> all;
  for (const auto& task : scores_by_task) all.insert(all.end(), task.begin(), task.end());
  return iqm(std::move(all));
}

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return percentile_of_sorted(values, q);
}

Interval bootstrap_ci(const TaskScores& scores_by_task,
                      const std::function<double(const TaskScores&)>& stat, int reps,
                      double confidence, uint64_t seed) {
  check_tasks(scores_by_task, "bootstrap_ci");
  if (reps < 1) throw std::invalid_argument("bootstrap_ci: reps must be >= 1");
  Rng rng(seed);
  TaskScores sample;
  std::vector<double> replicates(reps);
  for (auto& r : replicates) {
    resample(scores_by_task, rng, sample);
    r = stat(sample);
  }
  return percentile_interval(std::move(replicates), confidence);
}

double probability_of_improvement(const TaskScores& x, const TaskScores& y) {
  check_tasks(x, "probability_of_improvement");
  check_tasks(y, "probability_of_improvement");
  if (x.size() != y.size())
    throw std::invalid_argument("probability_of_improvement: x and y have different task counts");
  double total = 0;
  for (size_t t = 0; t < x.size(); ++t) {
    // Counting halves as doubles is exact, so this equals scipy's rank-based U statistic.
    double wins = 0;
    for (double a : x[t])
      for (double b : y[t]) wins += a > b ? 1.0 : (a == b ? 0.5 : 0.0);
    total += wins / (static_cast<double>(x[t].size()) * static_cast<double>(y[t].size()));
  }
  return total / static_cast<double>(x.size());
}

Interval probability_of_improvement_ci(const TaskScores& x, const TaskScores& y, int reps,
                                       double confidence, uint64_t seed) {
  probability_of_improvement(x, y);  // validates the shapes
  if (reps < 1) throw std::invalid_argument("probability_of_improvement_ci: reps must be >= 1");
  Rng rng(seed);
  TaskScores xs, ys;
  std::vector<double> replicates(reps);
  for (auto& r : replicates) {
    resample(x, rng, xs);
    resample(y, rng, ys);
    r = probability_of_improvement(xs, ys);
  }
  return percentile_interval(std::move(replicates), confidence);
}

}  // namespace stoch::analysis
