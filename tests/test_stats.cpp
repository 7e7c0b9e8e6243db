// IQM, stratified bootstrap intervals and probability of improvement, checked by hand and
// against rliable itself (run in the project's Python when STOCH_PYTHON names it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/stats.h"
#include "core/rng.h"
#include "test_util.h"

namespace {

using stoch::analysis::Interval;
using stoch::analysis::TaskScores;
namespace fs = std::filesystem;

const char* kMetricsPreamble = "import numpy as np\nfrom rliable import metrics\n";

// Imports rliable.library even where arch's package __init__ fails on the installed pandas
// (arch 7.2 with pandas 3): rliable only needs arch.bootstrap, which imports cleanly.
const char* kLibraryPreamble = R"(
import importlib.util, sys, types
try:
    import rliable.library
except Exception:
    for name in [m for m in sys.modules if m == "arch" or m.startswith("arch.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("arch")
    pkg = types.ModuleType("arch")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["arch"] = pkg
    import rliable.library
from rliable import library as rly
)";

using stoch::test::python_path;

#define SKIP_WITHOUT_PYTHON() STOCH_REQUIRE(stoch::test::python_missing("numpy, rliable"))

// Runs a Python script and returns the numbers it prints, one a line. rliable.library (the
// bootstrap) takes a second to import, so only scripts that need it get it.
std::vector<double> run_python(const std::string& script, bool with_library = false) {
  const std::string path =
      (fs::temp_directory_path() / ("stoch-test-stats-" + std::to_string(::getpid()) + ".py"))
          .string();
  const std::string err_path = path + ".err";
  std::ofstream(path) << kMetricsPreamble << (with_library ? kLibraryPreamble : "") << script;
  // stderr apart: warnings there must not be read as numbers.
  const std::string cmd = "'" + python_path() + "' '" + path + "' 2>'" + err_path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  std::ifstream err_in(err_path);
  const std::string err((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  fs::remove(err_path);
  EXPECT_EQ(status, 0) << out << err;
  std::vector<double> values;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    char* end = nullptr;
    const double v = std::strtod(line.c_str(), &end);
    EXPECT_TRUE(end != line.c_str() && *end == '\0') << "unexpected Python output: " << out << err;
    values.push_back(v);
  }
  return values;
}

std::string py_list(const std::vector<double>& v) {
  std::string s = "[";
  char buf[40];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%.17g,", x);
    s += buf;
  }
  return s + "]";
}

// rliable's layout: an array of shape (runs, tasks); every task must have as many runs.
std::string py_matrix(const TaskScores& by_task) {
  std::string s = "np.array([";
  for (size_t r = 0; r < by_task[0].size(); ++r) {
    std::vector<double> row;
    for (const auto& task : by_task) row.push_back(task[r]);
    s += py_list(row) + ",";
  }
  return s + "])";
}

std::vector<double> normals(stoch::Rng& rng, size_t n, double mean, double sd) {
  std::vector<double> v(n);
  for (auto& x : v) x = mean + sd * rng.normal();
  return v;
}

TEST(Stats, IqmByHand) {
  using stoch::analysis::iqm;
  EXPECT_DOUBLE_EQ(iqm({10.0}), 10.0);
  EXPECT_DOUBLE_EQ(iqm({1.0, 100.0}), 50.5);           // n < 4 trims nothing
  EXPECT_DOUBLE_EQ(iqm({0.0, 1.0, 2.0, 100.0}), 1.5);  // one value off each end
  EXPECT_DOUBLE_EQ(iqm({5.0, 1.0, 4.0, 2.0, 3.0}), 3.0);
  EXPECT_DOUBLE_EQ(iqm({8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0}), 4.5);  // mean of 3, 4, 5, 6
  EXPECT_DOUBLE_EQ(
      stoch::analysis::aggregate_iqm(TaskScores{{8.0, 1.0, 7.0}, {2.0, 6.0}, {3.0, 5.0, 4.0}}),
      4.5);
  EXPECT_TRUE(std::isnan(iqm(std::vector<double>{})));
}

TEST(Stats, AggregatesByHand) {
  using namespace stoch::analysis;
  // Task means 2 and 10 (the second task has more runs, and still weighs the same).
  const TaskScores s = {{1, 3}, {9, 10, 11}};
  EXPECT_DOUBLE_EQ(aggregate_mean(s), 6);
  EXPECT_DOUBLE_EQ(aggregate_median(s), 6);  // numpy's median of two: their mean
  EXPECT_DOUBLE_EQ(aggregate_median({{1}, {5}, {100}}), 5);
  EXPECT_DOUBLE_EQ(optimality_gap({{0.5, 1.5}, {0.0, 1.0}}), 1 - (0.5 + 1 + 0 + 1) / 4);
  EXPECT_DOUBLE_EQ(optimality_gap({{3, 4}}, 5), 1.5);
  EXPECT_EQ(score_distribution(s, {0, 2, 3, 10.5, 11}), (std::vector<double>{1, 0.8, 0.6, 0.2, 0}));
}

TEST(Stats, PercentileMatchesNumpyLinear) {
  using stoch::analysis::percentile;
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile({4, 3, 2, 1}, 97.5), 3.925);
  EXPECT_DOUBLE_EQ(percentile({7}, 2.5), 7);
}

TEST(Stats, IqmMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  stoch::Rng rng(7);
  std::vector<std::vector<double>> sets;
  for (size_t n = 1; n <= 13; ++n) sets.push_back(normals(rng, n, 1.0, 2.0));
  sets.push_back({1, 1, 1, 1});
  sets.push_back({2, 2, 3, 3, 3, 1});
  sets.push_back({0, 0, 0, 5, 5, 5, 5});
  sets.push_back({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5});
  std::string script;
  for (const auto& s : sets)
    script += "print(repr(float(metrics.aggregate_iqm(np.array(" + py_list(s) + ")))))\n";
  const TaskScores matrix = {normals(rng, 5, 0, 1), normals(rng, 5, 3, 1), normals(rng, 5, 6, 1)};
  script += "print(repr(float(metrics.aggregate_iqm(" + py_matrix(matrix) + "))))\n";

  const auto expected = run_python(script);
  ASSERT_EQ(expected.size(), sets.size() + 1);
  for (size_t i = 0; i < sets.size(); ++i)
    EXPECT_NEAR(stoch::analysis::iqm(sets[i]), expected[i], 1e-12) << "set " << i;
  EXPECT_NEAR(stoch::analysis::aggregate_iqm(matrix), expected.back(), 1e-12);
}

TEST(Stats, ProbabilityOfImprovementMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  using stoch::analysis::probability_of_improvement;
  // Ties within and across methods, and one task where both methods score identically.
  const TaskScores x = {{1, 2, 2, 3, 5}, {0.5, 0.5, 0.7, 0.1, 0.9}, {4, 4, 4, 4, 4}};
  const TaskScores y = {{2, 2, 4, 0}, {0.5, 0.6, 0.1, 0.2}, {4, 4, 4, 4}};
  const TaskScores same = {{1, 2, 3}, {4, 5, 6}};
  const std::string script =
      "print(repr(float(metrics.probability_of_improvement(" + py_matrix(x) + ", " + py_matrix(y) +
      "))))\n" + "print(repr(float(metrics.probability_of_improvement(" + py_matrix(y) + ", " +
      py_matrix(x) + "))))\n" + "print(repr(float(metrics.probability_of_improvement(" +
      py_matrix(same) + ", " + py_matrix(same) + "))))\n";
  const auto expected = run_python(script);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_NEAR(probability_of_improvement(x, y), expected[0], 1e-12);
  EXPECT_NEAR(probability_of_improvement(y, x), expected[1], 1e-12);
  EXPECT_NEAR(probability_of_improvement(same, same), expected[2], 1e-12);
  // By hand, one task: 3 > {1, 2}, 2 > {1} and 2 == 2 (half): (2 + 1 + 0.5) / 6.
  EXPECT_DOUBLE_EQ(probability_of_improvement({{3, 2}}, {{1, 2, 5}}), 3.5 / 6);
}

// Both sides use 5000 resamples, so their percentiles differ by Monte Carlo noise of about 1.4%
// of the interval's width; tasks with different means make an unstratified bootstrap far wider.
TEST(Stats, BootstrapIntervalMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  stoch::Rng rng(11);
  const TaskScores scores = {normals(rng, 10, 0, 1), normals(rng, 10, 5, 1),
                             normals(rng, 10, 10, 2)};
  const std::string script =
      "np.random.seed(0)\n"
      "_, ci = rly.get_interval_estimates({'a': " +
      py_matrix(scores) +
      "},"
      " lambda s: np.array([metrics.aggregate_iqm(s)]), reps=5000)\n"
      "print(repr(float(np.ravel(ci['a'])[0]))); print(repr(float(np.ravel(ci['a'])[-1])))\n";
  const auto expected = run_python(script, /*with_library=*/true);
  ASSERT_EQ(expected.size(), 2u);
  const Interval ci = stoch::analysis::bootstrap_ci(
      scores, [](const TaskScores& s) { return stoch::analysis::aggregate_iqm(s); }, 5000, 0.95, 1);
  const double width = expected[1] - expected[0];
  EXPECT_NEAR(ci.lo, expected[0], 0.05 * width);
  EXPECT_NEAR(ci.hi, expected[1], 0.05 * width);
}

// P(X better than Y) and its interval against rliable's (each method's runs resampled
// independently within tasks, `reps` resamples on each side; `tolerance` is a share of the
// interval's width). rliable computes each resample with scipy's Mann-Whitney test, which is
// slow, so the resamples are few.
void expect_improvement_matches_rliable(const TaskScores& x, const TaskScores& y, int reps,
                                        double tolerance) {
  const std::string script =
      "np.random.seed(0)\n"
      "p, ci = rly.get_interval_estimates({'p': [" +
      py_matrix(x) + ", " + py_matrix(y) +
      "]}, metrics.probability_of_improvement, reps=" + std::to_string(reps) +
      ")\n"
      "print(repr(float(np.ravel(p['p'])[0])))\n"
      "print(repr(float(np.ravel(ci['p'])[0]))); print(repr(float(np.ravel(ci['p'])[-1])))\n";
  const auto expected = run_python(script, /*with_library=*/true);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_NEAR(stoch::analysis::probability_of_improvement(x, y), expected[0], 1e-12);
  const Interval ci = stoch::analysis::probability_of_improvement_ci(x, y, reps, 0.95, 1);
  const double width = expected[2] - expected[1];
  EXPECT_NEAR(ci.lo, expected[1], tolerance * width);
  EXPECT_NEAR(ci.hi, expected[2], tolerance * width);
}

// One task, 10 runs against 8: 2000 resamples (Monte Carlo noise about 2.2% of the width).
TEST(Stats, ImprovementIntervalMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  stoch::Rng rng(12);
  expect_improvement_matches_rliable({normals(rng, 10, 0, 1)}, {normals(rng, 8, 0.2, 1)}, 2000,
                                     0.08);
}

// Prints rliable's point estimate and interval of `func` (a Python expression of scores s that
// returns one number) for `matrix`, with task_bootstrap as given.
std::string rliable_estimate(const std::string& matrix, const std::string& func, int reps,
                             bool task_bootstrap) {
  return "np.random.seed(0)\n"
         "p, ci = rly.get_interval_estimates({'a': " +
         matrix + "}, lambda s: np.array([" + func + "]), reps=" + std::to_string(reps) +
         ", task_bootstrap=" + (task_bootstrap ? "True" : "False") +
         ")\n"
         "print(repr(float(np.ravel(p['a'])[0])))\n"
         "print(repr(float(np.ravel(ci['a'])[0]))); print(repr(float(np.ravel(ci['a'])[-1])))\n";
}

// IQM, median, mean and optimality gap over tasks x runs, with and without resampling the
// tasks: points to 1e-12, interval ends to within 5% of the width (5000 resamples each side,
// Monte Carlo noise about 1.4% of the width).
TEST(Stats, AggregatesMatchRliableAcrossTasks) {
  SKIP_WITHOUT_PYTHON();
  using namespace stoch::analysis;
  stoch::Rng rng(21);
  // Four tasks on different scales, ten runs each, some scores above the gap's target of 1.
  const TaskScores scores = {normals(rng, 10, 0.2, 0.1), normals(rng, 10, 0.9, 0.3),
                             normals(rng, 10, 1.4, 0.5), normals(rng, 10, 0.5, 0.05)};
  const std::vector<std::pair<std::string, double (*)(const TaskScores&)>> stats = {
      {"metrics.aggregate_iqm(s)", aggregate_iqm},
      {"metrics.aggregate_median(s)", aggregate_median},
      {"metrics.aggregate_mean(s)", aggregate_mean},
      {"metrics.aggregate_optimality_gap(s)",
       [](const TaskScores& x) { return optimality_gap(x); }},
  };
  std::string script;
  for (const bool task_bootstrap : {false, true})
    for (const auto& [func, stat] : stats)
      script += rliable_estimate(py_matrix(scores), func, 5000, task_bootstrap);
  const auto expected = run_python(script, /*with_library=*/true);
  ASSERT_EQ(expected.size(), 3 * 2 * stats.size());
  size_t i = 0;
  for (const bool task_bootstrap : {false, true}) {
    for (size_t k = 0; k < stats.size(); ++k, i += 3) {
      const auto& [func, stat] = stats[k];
      EXPECT_NEAR(stat(scores), expected[i], 1e-12) << func;
      const Interval ci = bootstrap_ci(scores, stat, 5000, 0.95, 5 + k, task_bootstrap);
      const double width = expected[i + 2] - expected[i + 1];
      EXPECT_NEAR(ci.lo, expected[i + 1], 0.05 * width)
          << func << " task_bootstrap " << task_bootstrap;
      EXPECT_NEAR(ci.hi, expected[i + 2], 0.05 * width)
          << func << " task_bootstrap " << task_bootstrap;
    }
  }
  // Resampling tasks widens the interval of the mean: the tasks' means differ by far more than
  // the runs' noise.
  const Interval runs_only = bootstrap_ci(scores, aggregate_mean, 2000, 0.95, 1);
  const Interval with_tasks = bootstrap_ci(scores, aggregate_mean, 2000, 0.95, 1, true);
  EXPECT_GT(with_tasks.hi - with_tasks.lo, 3 * (runs_only.hi - runs_only.lo));
}

// Performance profiles: the fraction of all runs above each tau, and its bands. Fractions of 40
// runs move in steps of 0.025, so the bands' ends may differ from rliable's by a step.
TEST(Stats, PerformanceProfileMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  using namespace stoch::analysis;
  stoch::Rng rng(22);
  const TaskScores scores = {normals(rng, 10, 0.3, 0.2), normals(rng, 10, 0.7, 0.2),
                             normals(rng, 10, 1.0, 0.4), normals(rng, 10, 0.1, 0.1)};
  std::vector<double> taus;
  for (int i = 0; i <= 20; ++i) taus.push_back(-0.25 + 0.1 * i);
  const std::string script =
      "np.random.seed(0)\n"
      "p, ci = rly.create_performance_profile({'a': " +
      py_matrix(scores) + "}, np.array(" + py_list(taus) +
      "), reps=3000)\n"
      "for v in np.ravel(p['a']): print(repr(float(v)))\n"
      "for v in np.ravel(ci['a'][0]): print(repr(float(v)))\n"
      "for v in np.ravel(ci['a'][1]): print(repr(float(v)))\n";
  const auto expected = run_python(script, /*with_library=*/true);
  ASSERT_EQ(expected.size(), 3 * taus.size());
  const auto profile = [&taus](const TaskScores& s) { return score_distribution(s, taus); };
  const auto values = profile(scores);
  const auto cis = bootstrap_cis(scores, profile, 3000, 0.95, 9);
  const size_t n = taus.size();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_DOUBLE_EQ(values[i], expected[i]) << "tau " << taus[i];
    EXPECT_NEAR(cis[i].lo, expected[n + i], 0.0251) << "tau " << taus[i];
    EXPECT_NEAR(cis[i].hi, expected[2 * n + i], 0.0251) << "tau " << taus[i];
  }
  EXPECT_EQ(values.front(), 1.0);  // every score is above -0.25 ...
  EXPECT_EQ(values.back(), 0.0);   // ... and none above 1.75
}

// Probability of improvement averaged over three tasks: 1000 resamples, noise about 3% of the
// width.
TEST(Stats, ImprovementAcrossTasksMatchesRliable) {
  SKIP_WITHOUT_PYTHON();
  stoch::Rng rng(23);
  const TaskScores x = {normals(rng, 6, 0, 1), normals(rng, 6, 5, 1), normals(rng, 6, 1, 0.1)};
  const TaskScores y = {normals(rng, 6, 0.5, 1), normals(rng, 6, 5, 1), normals(rng, 6, 1.05, 0.1)};
  expect_improvement_matches_rliable(x, y, 1000, 0.1);
}

// One task: rliable wants the scores as (runs, 1). Passed as (1, runs), the way a single list
// of seeds reads naturally, its bootstrap has one "run" per task to draw and the interval
// collapses to the point: the axis pitfall. stoch's one-task interval matches the right layout.
TEST(Stats, SingleTaskMatchesRliableNotItsAxisPitfall) {
  SKIP_WITHOUT_PYTHON();
  using namespace stoch::analysis;
  stoch::Rng rng(24);
  const std::vector<double> runs = normals(rng, 12, 3, 1);
  const std::string right = "np.array(" + py_list(runs) + ").reshape(-1, 1)";
  const std::string wrong = "np.array(" + py_list(runs) + ").reshape(1, -1)";
  const std::string script = rliable_estimate(right, "metrics.aggregate_iqm(s)", 5000, false) +
                             rliable_estimate(wrong, "metrics.aggregate_iqm(s)", 5000, false);
  const auto expected = run_python(script, /*with_library=*/true);
  ASSERT_EQ(expected.size(), 6u);
  const Interval ci = bootstrap_ci({runs}, aggregate_iqm, 5000, 0.95, 2);
  const double width = expected[2] - expected[1];
  EXPECT_GT(width, 0.3);
  EXPECT_NEAR(iqm(runs), expected[0], 1e-12);
  EXPECT_NEAR(ci.lo, expected[1], 0.05 * width);
  EXPECT_NEAR(ci.hi, expected[2], 0.05 * width);
  // The pitfall: twelve one-run tasks, nothing to resample. (Its point is the same IQM.)
  EXPECT_NEAR(expected[3], iqm(runs), 1e-12);
  EXPECT_EQ(expected[4], expected[5]);
}

TEST(Stats, BootstrapIsDeterministicAndSane) {
  using stoch::analysis::bootstrap_ci;
  auto stat = [](const TaskScores& s) { return stoch::analysis::aggregate_iqm(s); };
  const TaskScores scores = {{1, 2, 3, 4, 5, 6}, {10, 11, 12}};
  const Interval a = bootstrap_ci(scores, stat, 500, 0.95, 3);
  const Interval b = bootstrap_ci(scores, stat, 500, 0.95, 3);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_LE(a.lo, stoch::analysis::aggregate_iqm(scores));
  EXPECT_GE(a.hi, stoch::analysis::aggregate_iqm(scores));
  const Interval flat = bootstrap_ci({{2, 2, 2}}, stat, 100);
  EXPECT_EQ(flat.lo, 2);
  EXPECT_EQ(flat.hi, 2);
  EXPECT_THROW(bootstrap_ci({{1.0}, {}}, stat), std::invalid_argument);
}

}  // namespace
