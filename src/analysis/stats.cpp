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

// One stratified resample: every task keeps its size, its runs drawn with replacement. With
// `tasks`, each slot first draws the task it holds, with replacement.
void resample(const TaskScores& scores, Rng& rng, TaskScores& out, bool tasks = false) {
  out.resize(scores.size());
  for (size_t t = 0; t < scores.size(); ++t) {
    const auto& runs = scores[tasks ? rng.below(scores.size()) : t];
    out[t].resize(runs.size());
    for (auto& v : out[t]) v = runs[rng.below(runs.size())];
  }
}

std::vector<double> task_means(const TaskScores& scores) {
  std::vector<double> means;
  for (const auto& task : scores) {
    double sum = 0;
    for (double v : task) sum += v;
    means.push_back(sum / static_cast<double>(task.size()));
  }
  return means;
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

double aggregate_mean(const TaskScores& scores_by_task) {
  const auto means = task_means(scores_by_task);
  double sum = 0;
  for (double m : means) sum += m;
  return sum / static_cast<double>(means.size());
}

double aggregate_median(const TaskScores& scores_by_task) {
  return percentile(task_means(scores_by_task), 50);  // numpy's median: the middle two averaged
}

double optimality_gap(const TaskScores& scores_by_task, double gamma) {
  double sum = 0;
  size_t n = 0;
  for (const auto& task : scores_by_task) {
    for (double v : task) sum += std::min(v, gamma);
    n += task.size();
  }
  return gamma - sum / static_cast<double>(n);
}

std::vector<double> score_distribution(const TaskScores& scores_by_task,
                                       const std::vector<double>& taus) {
  std::vector<double> all;
  for (const auto& task : scores_by_task) all.insert(all.end(), task.begin(), task.end());
  std::sort(all.begin(), all.end());
  std::vector<double> out;
  for (double tau : taus) {
    const auto above = all.end() - std::upper_bound(all.begin(), all.end(), tau);
    out.push_back(static_cast<double>(above) / static_cast<double>(all.size()));
  }
  return out;
}

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return percentile_of_sorted(values, q);
}

Interval bootstrap_ci(const TaskScores& scores_by_task,
                      const std::function<double(const TaskScores&)>& stat, int reps,
                      double confidence, uint64_t seed, bool task_bootstrap) {
  check_tasks(scores_by_task, "bootstrap_ci");
  if (reps < 1) throw std::invalid_argument("bootstrap_ci: reps must be >= 1");
  Rng rng(seed);
  TaskScores sample;
  std::vector<double> replicates(reps);
  for (auto& r : replicates) {
    resample(scores_by_task, rng, sample, task_bootstrap);
    r = stat(sample);
  }
  return percentile_interval(std::move(replicates), confidence);
}

std::vector<Interval> bootstrap_cis(
    const TaskScores& scores_by_task,
    const std::function<std::vector<double>(const TaskScores&)>& stat, int reps, double confidence,
    uint64_t seed, bool task_bootstrap) {
  check_tasks(scores_by_task, "bootstrap_cis");
  if (reps < 1) throw std::invalid_argument("bootstrap_cis: reps must be >= 1");
  Rng rng(seed);
  TaskScores sample;
  std::vector<std::vector<double>> replicates;  // [value][replicate]
  for (int r = 0; r < reps; ++r) {
    resample(scores_by_task, rng, sample, task_bootstrap);
    const auto values = stat(sample);
    if (replicates.empty()) replicates.resize(values.size());
    if (values.size() != replicates.size())
      throw std::invalid_argument("bootstrap_cis: the statistic changed its length");
    for (size_t i = 0; i < values.size(); ++i) replicates[i].push_back(values[i]);
  }
  std::vector<Interval> out;
  for (auto& values : replicates) out.push_back(percentile_interval(std::move(values), confidence));
  return out;
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
