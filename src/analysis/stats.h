// Aggregate statistics over seeds, following the rliable protocol (Agarwal et al. 2021,
// "Deep RL at the Edge of the Statistical Precipice"): interquartile mean, stratified
// bootstrap percentile intervals and the probability of improvement. Definitions match
// rliable 1.2 (and the scipy/numpy/arch functions it calls) so that numbers agree with it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace stoch::analysis {

// Scores of one method: scores_by_task[task][run]. Tasks may have different numbers of runs.
using TaskScores = std::vector<std::vector<double>>;

// Interquartile mean: scipy.stats.trim_mean(x, 0.25). Drops floor(n/4) values at each end of
// the sorted scores and averages the rest (n < 4 drops nothing). NaN for an empty vector.
double iqm(std::vector<double> scores);

// IQM of all scores of all tasks together (rliable's aggregate_iqm flattens them).
double aggregate_iqm(const TaskScores& scores_by_task);

// Mean, and median, over tasks of each task's mean score (rliable's aggregate_mean and
// aggregate_median: every task weighs the same, whatever its number of runs).
double aggregate_mean(const TaskScores& scores_by_task);
double aggregate_median(const TaskScores& scores_by_task);

// How far the runs fall short of `gamma`, on average over all runs of all tasks:
// gamma - mean(min(score, gamma)) (rliable's aggregate_optimality_gap).
double optimality_gap(const TaskScores& scores_by_task, double gamma = 1.0);

// For each tau, the fraction of all runs of all tasks scoring above it (rliable's
// score_distributions: the performance profile's run-score distribution).
std::vector<double> score_distribution(const TaskScores& scores_by_task,
                                       const std::vector<double>& taus);

struct Interval {
  double lo, hi;
};

// numpy.percentile(values, q) with its default linear interpolation; q in [0, 100].
double percentile(std::vector<double> values, double q);

// Stratified bootstrap percentile interval of `stat` (rliable's StratifiedBootstrap with
// get_interval_estimates(method="percentile")): each replicate resamples the runs of every
// task with replacement, keeping tasks fixed; the interval holds the central `confidence`
// mass of the replicates. With `task_bootstrap`, each replicate also draws its tasks with
// replacement (rliable's task_bootstrap=True). Deterministic for a given seed.
Interval bootstrap_ci(const TaskScores& scores_by_task,
                      const std::function<double(const TaskScores&)>& stat, int reps = 2000,
                      double confidence = 0.95, uint64_t seed = 0, bool task_bootstrap = false);

// The same for a statistic with several values (a performance profile over its taus): one
// interval per value, every value computed from the same replicates.
std::vector<Interval> bootstrap_cis(
    const TaskScores& scores_by_task,
    const std::function<std::vector<double>(const TaskScores&)>& stat, int reps = 2000,
    double confidence = 0.95, uint64_t seed = 0, bool task_bootstrap = false);

// P(X > Y) + 0.5 P(X = Y) for a run of X and a run of Y of the same task, averaged over tasks
// (the Mann-Whitney U statistic over nx * ny, as rliable computes it). Throws
// std::invalid_argument when the task counts differ or a task has no runs.
double probability_of_improvement(const TaskScores& x, const TaskScores& y);

// Its bootstrap interval: x and y resampled independently, each stratified by task
// (rliable's StratifiedIndependentBootstrap).
Interval probability_of_improvement_ci(const TaskScores& x, const TaskScores& y, int reps = 2000,
                                       double confidence = 0.95, uint64_t seed = 0);

}  // namespace stoch::analysis
