#include "analysis/compare.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <numeric>
#include <set>

#include "core/errors.h"
#include "core/rng.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch::analysis {
namespace {

// Streams used by the bootstrap, so that each interval has its own reproducible seed.
enum : uint64_t {
  kStreamIqm = 1,
  kStreamImprovement = 2,
  kStreamCurve = 3,
  kStreamMedian = 4,
  kStreamMean = 5,
  kStreamGap = 6,
  kStreamProfile = 7,
  kStreamTaskIqm = 8,
};

constexpr int kProfilePoints = 51;

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

TaskScores negated(TaskScores s) {
  for (auto& task : s)
    for (auto& v : task) v = -v;
  return s;
}

// The group's runs by task, in `tasks` order.
std::vector<std::vector<const Run*>> runs_by_task(const RunGroup& g,
                                                  const std::vector<std::string>& tasks) {
  std::vector<std::vector<const Run*>> out(tasks.size());
  for (const auto& run : g.runs) {
    const auto t = std::find(tasks.begin(), tasks.end(), run.task) - tasks.begin();
    out[static_cast<size_t>(t)].push_back(&run);
  }
  return out;
}

// The run's last logged point, or with at_step >= 0 its last point at or before at_step.
std::pair<int64_t, double> final_point(const Run& run, int64_t at_step) {
  if (at_step < 0) return *run.curve.rbegin();
  auto it = run.curve.upper_bound(at_step);
  if (it == run.curve.begin())
    throw InputError(str(run.dir, ": no value at or before step ", at_step));
  return *std::prev(it);
}

TaskResult task_result(const std::vector<const Run*>& runs, bool minimize, int64_t at_step,
                       int reps, uint64_t seed) {
  TaskResult r;
  std::vector<double> bests;
  r.final_step_min = final_point(*runs[0], at_step).first;
  r.final_step_max = r.final_step_min;
  for (const Run* run : runs) {
    const auto [step, value] = final_point(*run, at_step);
    r.finals.push_back(value);
    r.final_step_min = std::min(r.final_step_min, step);
    r.final_step_max = std::max(r.final_step_max, step);
    auto best = run->curve.begin()->second;
    for (const auto& [st, v] : run->curve)
      if (st <= step) best = minimize ? std::min(best, v) : std::max(best, v);
    bests.push_back(best);
  }
  r.final_mean = mean(r.finals);
  r.best_mean = mean(bests);
  r.iqm = {iqm(r.finals), bootstrap_ci({r.finals}, aggregate_iqm, reps, 0.95, seed)};
  return r;
}

Estimate estimate(const TaskScores& scores, double (*stat)(const TaskScores&),
                  const CompareSettings& s, uint64_t seed) {
  return {stat(scores), bootstrap_ci(scores, stat, s.reps, 0.95, seed, s.task_bootstrap)};
}

std::vector<CurvePoint> aggregate_curve(const std::vector<std::vector<const Run*>>& by_task,
                                        const std::vector<std::string>& tasks,
                                        const CompareSettings& s, uint64_t seed) {
  std::vector<CurvePoint> points;
  for (const auto& [step, first_value] : by_task[0][0]->curve) {
    TaskScores values(by_task.size());
    size_t n = 0;
    bool everywhere = true;
    for (size_t t = 0; t < by_task.size() && everywhere; ++t) {
      for (const Run* run : by_task[t]) {
        const auto it = run->curve.find(step);
        if (it == run->curve.end()) {
          everywhere = false;  // a step some run did not log
          break;
        }
        values[t].push_back(s.normalization ? s.normalization->apply(tasks[t], it->second)
                                            : it->second);
        ++n;
      }
    }
    if (!everywhere) continue;
    CurvePoint p;
    p.step = step;
    p.n = n;
    p.mean = aggregate_mean(values);
    p.iqm = aggregate_iqm(values);
    p.ci =
        bootstrap_ci(values, aggregate_iqm, s.reps, 0.95,
                     mix_seed(seed, kStreamCurve, static_cast<uint64_t>(step)), s.task_bootstrap);
    points.push_back(p);
  }
  return points;
}

// kProfilePoints taus spanning every group's scores (and [0, 1] when normalised).
std::vector<double> profile_taus(const std::vector<GroupSummary>& groups, bool normalised) {
  double lo = normalised ? 0.0 : groups[0].scores[0][0];
  double hi = normalised ? 1.0 : lo;
  for (const auto& g : groups)
    for (const auto& task : g.scores)
      for (double v : task) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (lo == hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  std::vector<double> taus;
  for (int i = 0; i < kProfilePoints; ++i)
    taus.push_back(lo + (hi - lo) * i / static_cast<double>(kProfilePoints - 1));
  return taus;
}

}  // namespace

size_t GroupSummary::runs() const {
  size_t n = 0;
  for (const auto& t : tasks) n += t.finals.size();
  return n;
}

std::optional<bool> metric_direction(const std::string& metric) {
  static const std::set<std::string> lower_words = {
      "loss", "mse", "mae", "rmse",   "error",      "bpb",     "nll",    "kl",
      "ce",   "gap", "ppl", "regret", "perplexity", "dormant", "seconds"};
  static const std::set<std::string> higher_words = {"return",  "reward",    "accuracy",   "acc",
                                                     "tau",     "align",     "rank",       "srank",
                                                     "surplus", "agreement", "efficiency", "score"};
  static const std::set<std::string> undirected_words = {"std", "entropy", "length"};
  const std::string name = lowercase(metric);
  bool lower = false, higher = false;
  // Whole words of the name ("diag/ce_probe": diag, ce, probe), so "kl" is not found in "tickle".
  std::string word;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && std::isalnum(static_cast<unsigned char>(name[i]))) {
      word += name[i];
      continue;
    }
    if (undirected_words.count(word)) return std::nullopt;
    lower = lower || lower_words.count(word) > 0;
    higher = higher || higher_words.count(word) > 0;
    word.clear();
  }
  // As before whole words were read: these inside a longer word ("valloss") still say lower.
  for (const char* part : {"loss", "mse", "error", "bpb"})
    lower = lower || name.find(part) != std::string::npos;
  if (lower == higher) return std::nullopt;
  return lower;
}

bool minimize_metric(const std::string& metric, const std::string& mode) {
  if (mode == "min") return true;
  if (mode == "max") return false;
  if (mode != "auto") throw InputError(str("--mode ", mode, ": expected one of min, max, auto"));
  return metric_direction(metric).value_or(false);
}

std::string default_metric(const std::vector<std::string>& paths,
                           const std::map<std::string, std::string>& task_metrics) {
  const std::string config = (fs::path(find_run_dirs(paths).front()) / "config.yaml").string();
  const config::Node root = config::load_file(config);
  const config::Node* task = root.find("task");
  const std::string name = task ? task->scalar : "";  // task_metrics maps "" to the default's
  const auto it = task_metrics.find(name);
  if (it == task_metrics.end() || it->second.empty())
    throw InputError(str(config, ": task ", name, " has no default metric; pass --metric"));
  return it->second;
}

Comparison compare_groups(const RunSet& set, const CompareSettings& s) {
  const Normalization* norm = s.normalization;
  if (norm) norm->check_covers(set.tasks);
  Comparison c;
  c.metric = s.metric;
  c.minimize = s.minimize;
  c.scores_minimize = norm && norm->reference_form ? false : s.minimize;
  c.reps = s.reps;
  c.at_step = s.at_step;
  c.task_bootstrap = s.task_bootstrap;
  c.task_keys = set.task_keys;
  c.tasks = set.tasks;
  c.following_keys = set.following_keys;
  if (norm) c.normalization = norm->file;

  std::vector<std::vector<std::vector<const Run*>>> by_task;
  // Each group's scores turned so that higher is better: what the gap, the probability of
  // improvement and the profiles compare.
  std::vector<TaskScores> turned_scores;
  for (size_t gi = 0; gi < set.groups.size(); ++gi) {
    const auto& g = set.groups[gi];
    by_task.push_back(runs_by_task(g, c.tasks));
    GroupSummary sum;
    sum.label = g.label;
    for (size_t t = 0; t < c.tasks.size(); ++t) {
      sum.tasks.push_back(task_result(by_task[gi][t], s.minimize, s.at_step, s.reps,
                                      mix_seed(s.seed, kStreamTaskIqm, gi, t)));
      auto finals = sum.tasks.back().finals;
      if (norm)
        for (auto& v : finals) v = norm->apply(c.tasks[t], v);
      sum.scores.push_back(std::move(finals));
    }
    sum.iqm = estimate(sum.scores, aggregate_iqm, s, mix_seed(s.seed, kStreamIqm, gi));
    sum.median = estimate(sum.scores, aggregate_median, s, mix_seed(s.seed, kStreamMedian, gi));
    sum.mean = estimate(sum.scores, aggregate_mean, s, mix_seed(s.seed, kStreamMean, gi));
    turned_scores.push_back(c.scores_minimize ? negated(sum.scores) : sum.scores);
    if (norm) {
      // The gap to the best normalised score, on scores turned so that higher is better.
      const double sign = c.scores_minimize ? -1.0 : 1.0;
      const double target = sign * (c.scores_minimize ? 0.0 : 1.0);
      auto gap = [target](const TaskScores& x) { return optimality_gap(x, target); };
      const TaskScores& turned = turned_scores.back();
      sum.gap =
          Estimate{gap(turned), bootstrap_ci(turned, gap, s.reps, 0.95,
                                             mix_seed(s.seed, kStreamGap, gi), s.task_bootstrap)};
    }
    c.groups.push_back(std::move(sum));
    c.curves.push_back(
        aggregate_curve(by_task[gi], c.tasks, s, mix_seed(s.seed, kStreamCurve, gi)));
  }

  // "Better" is "greater" after negating scores to minimise. The reverse pair is the
  // complement (ties count half both ways), so each unordered pair is bootstrapped once.
  for (size_t x = 0; x < c.groups.size(); ++x) {
    for (size_t y = x + 1; y < c.groups.size(); ++y) {
      const TaskScores& sx = turned_scores[x];
      const TaskScores& sy = turned_scores[y];
      Improvement xy{x, y, probability_of_improvement(sx, sy),
                     probability_of_improvement_ci(sx, sy, s.reps, 0.95,
                                                   mix_seed(s.seed, kStreamImprovement, x, y))};
      Improvement yx{y, x, 1.0 - xy.p, {1.0 - xy.ci.hi, 1.0 - xy.ci.lo}};
      c.improvements.push_back(xy);
      c.improvements.push_back(yx);
    }
  }
  std::sort(c.improvements.begin(), c.improvements.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.x, a.y) < std::make_pair(b.x, b.y);
  });

  // Performance profiles: the fraction of runs better than tau is, for a metric to minimise,
  // the fraction of negated scores above -tau.
  const auto taus = profile_taus(c.groups, norm != nullptr);
  std::vector<double> turned_taus = taus;
  if (c.scores_minimize)
    for (auto& t : turned_taus) t = -t;
  auto profile = [&turned_taus](const TaskScores& x) { return score_distribution(x, turned_taus); };
  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    const TaskScores& turned = turned_scores[gi];
    const auto values = profile(turned);
    const auto cis = bootstrap_cis(turned, profile, s.reps, 0.95,
                                   mix_seed(s.seed, kStreamProfile, gi), s.task_bootstrap);
    auto& points = c.profiles.emplace_back();
    for (size_t i = 0; i < taus.size(); ++i) points.push_back({taus[i], {values[i], cis[i]}});
  }
  return c;
}

}  // namespace stoch::analysis
