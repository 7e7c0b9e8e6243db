// `stoch compare` on fake run directories: discovery, grouping by config, labels, and the
// numbers in compare.md / compare.csv / curves.csv.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/compare.h"
#include "analysis/run_groups.h"
#include "core/errors.h"
#include "core/registry.h"
#include "core/run_lock.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/task.h"

namespace {

namespace fs = std::filesystem;
using namespace stoch::analysis;

// What the cli passes: each registered task's primary metric.
std::map<std::string, std::string> task_metrics() {
  std::map<std::string, std::string> out;
  for (const auto& name : stoch::registry<stoch::train::TaskEntry>().names())
    out[name] = stoch::registry<stoch::train::TaskEntry>().get(name, "task").primary_metric;
  out[""] = out[stoch::train::ExperimentConfig().task];  // as the cli passes it
  return out;
}

// What the cli passes: the keys that change no result, which do not split groups.
const std::vector<std::string>& same_setup() {
  static const auto keys = stoch::train::same_setup_keys();
  return keys;
}

CompareOptions options() {
  CompareOptions o;
  o.same_setup_keys = same_setup();
  return o;
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A run whose eval val/loss is `losses` at steps 0, 50, 100, with train lines and a data line
// (whose null must be skipped) around them, like a real metrics.jsonl.
void write_run(const fs::path& dir, int d_model, int seed, int keep_last,
               const std::vector<double>& losses, const std::string& extra_lines = "") {
  write(dir / "config.yaml",
        "# Resolved by stoch\nrun:\n  name: " + dir.filename().string() +
            "\n  seed: " + std::to_string(seed) + "\n  threads: " + std::to_string(seed) +
            "\n  peak_tflops: " + std::to_string(100 * seed) +
            "\ntask: lm\nmodel:\n  d_model: " + std::to_string(d_model) +
            "\n  n_layer: 2\ntrain:\n  steps: 100\n  keep_last: " + std::to_string(keep_last) +
            "\n  ckpt_every: " + std::to_string(50 * seed) +
            "\nlog:\n  every: " + std::to_string(10 * seed) +
            "\ndist:\n  timeout_s: " + std::to_string(60 * seed) + "\n");
  std::ostringstream m;
  m << R"({"step": 0, "split": "data", "data/entropy_rate": 2.5, "val/loss": null})"
    << "\n";
  for (size_t i = 0; i < losses.size(); ++i) {
    m << R"({"step": )" << 50 * i << R"(, "split": "train", "loss": 9.0, "lr": 0.001})"
      << "\n";
    m << R"({"step": )" << 50 * i << R"(, "split": "eval", "val/loss": )" << losses[i] << "}\n";
  }
  m << extra_lines;
  write(dir / "metrics.jsonl", m.str());
}

// Group A (d_model 64) ends near 2.1, group B (d_model 128, nested one level deeper) near 2.6.
// A's runs differ in seed, threads, keep_last, log.every, run.peak_tflops, train.ckpt_every and
// dist.timeout_s, none of which changes a result, so none splits a group (the last three did).
std::string make_sweep() {
  const fs::path sweep = stoch::test::temp_dir("compare");
  write_run(sweep / "a-s1", 64, 1, 3, {3.0, 2.5, 2.0},
            R"({"step": 75, "split": "eval", "val/loss": 2.3})"
            "\n");  // a step the others lack
  // A resumed run re-logs step 50: the last value (1.9) wins, and is this run's best.
  write_run(sweep / "a-s2", 64, 2, 5, {3.1, 7.0, 2.2},
            R"({"step": 50, "split": "eval", "val/loss": 1.9})"
            "\n"
            R"({"step": 100, "split": "eval", "val/loss": 2.2})"
            "\n");
  write_run(sweep / "a-s3", 64, 3, 3, {3.2, 2.6, 2.1}, R"({"step": 110, "spl)");  // torn line
  write_run(sweep / "more" / "b-s1", 128, 1, 3, {3.0, 2.8, 2.6});
  write_run(sweep / "more" / "b-s2", 128, 2, 3, {3.0, 2.9, 2.7});
  write_run(sweep / "more" / "b-s3", 128, 3, 3, {3.0, 2.7, 2.5});
  return sweep.string();
}

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> row;
    std::istringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) row.push_back(f);
    rows.push_back(row);
  }
  return rows;
}

// The schema's keys that change no result, from every task's sections; a key that does is not
// among them.
TEST(Compare, SameSetupKeysComeFromTheSchema) {
  for (const char* key : {"run.seed", "run.name", "run.threads", "run.libtorch_kernels",
                          "run.peak_tflops", "train.ckpt_every", "train.keep_last",
                          "train.keep_every", "log.every", "dist.timeout_s", "dqn.helper_lane"})
    EXPECT_NE(std::find(same_setup().begin(), same_setup().end(), key), same_setup().end()) << key;
  for (const char* key : {"train.steps", "optim.lr", "run.precision", "dqn.gamma", "model.d_model"})
    EXPECT_EQ(std::find(same_setup().begin(), same_setup().end(), key), same_setup().end()) << key;
}

TEST(Compare, GroupsRunsByConfigAndLabelsByDifferingKey) {
  const std::string sweep = make_sweep();
  const auto groups = load_run_groups({sweep}, "val/loss", "eval", same_setup());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].label, "model.d_model=64");
  EXPECT_EQ(groups[1].label, "model.d_model=128");
  ASSERT_EQ(groups[0].runs.size(), 3u);
  ASSERT_EQ(groups[1].runs.size(), 3u);
  EXPECT_EQ(groups[0].runs[0].split, "eval");
  EXPECT_EQ(groups[0].runs[1].curve.at(50), 1.9);
  EXPECT_EQ(groups[0].runs[0].curve.size(), 4u);  // 0, 50, 75, 100
  EXPECT_EQ(groups[0].runs[2].curve.rbegin()->first, 100);
  fs::remove_all(sweep);
}

TEST(Compare, WritesTablesAndCurvesWithTheRightNumbers) {
  const std::string sweep = make_sweep();
  CompareOptions o = options();
  o.paths = {sweep};
  o.task_metrics = task_metrics();
  o.reps = 2000;
  o.python = "/nonexistent/python";  // plotting fails: a warning, and the tables stay
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  const std::string out = testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("plotting failed"), std::string::npos) << err;
  EXPECT_NE(out.find("| model.d_model=64 | 3 | 100 | 2.1 | 2 | 2.1 | [2, 2.2] |"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("| model.d_model=64 | model.d_model=128 | 1.00 | [1.00, 1.00] |"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("| model.d_model=128 | model.d_model=64 | 0.00 | [0.00, 0.00] |"),
            std::string::npos)
      << out;

  // Written into SWEEP/compare by default, since the path is a sweep.
  const fs::path dir = fs::path(sweep) / "compare";
  EXPECT_EQ(read(dir / "compare.md"), out);
  const auto table = read_csv(dir / "compare.csv");
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0][0], "group");
  const std::map<std::string, double> a = {{"final_mean", 2.1}, {"best_mean", 2.0}, {"iqm", 2.1}};
  const std::map<std::string, double> b = {{"final_mean", 2.6}, {"best_mean", 2.6}, {"iqm", 2.6}};
  for (size_t col = 1; col < table[0].size(); ++col) {
    const std::string& name = table[0][col];
    if (a.count(name)) {
      EXPECT_NEAR(std::stod(table[1][col]), a.at(name), 1e-9) << name;
    }
    if (b.count(name)) {
      EXPECT_NEAR(std::stod(table[2][col]), b.at(name), 1e-9) << name;
    }
  }
  EXPECT_EQ(table[1][0], "model.d_model=64");
  EXPECT_EQ(table[1][1], "");  // one task, unnamed
  EXPECT_EQ(table[1][2], "3");
  EXPECT_EQ(table[0][3], "final_step_min");
  EXPECT_EQ(table[0][4], "final_step");
  EXPECT_EQ(table[1][3], "100");
  EXPECT_EQ(table[1][4], "100");
  // IQM CI of three finals resampled: within their range, and the range's ends reachable.
  EXPECT_EQ(table[0][8], "iqm_ci_lo");
  EXPECT_NEAR(std::stod(table[1][8]), 2.0, 1e-9);
  EXPECT_NEAR(std::stod(table[1][9]), 2.2, 1e-9);

  const auto curves = read_csv(dir / "curves.csv");
  ASSERT_EQ(curves.size(), 7u);  // header + 3 steps per group; A's step 75 is in one run only
  EXPECT_EQ(curves[0],
            (std::vector<std::string>{"group", "step", "n", "mean", "iqm", "ci_lo", "ci_hi"}));
  EXPECT_EQ(curves[2][0], "model.d_model=64");
  EXPECT_EQ(curves[2][1], "50");
  EXPECT_EQ(curves[2][2], "3");
  EXPECT_NEAR(std::stod(curves[2][3]), (2.5 + 1.9 + 2.6) / 3, 1e-9);
  EXPECT_NEAR(std::stod(curves[2][4]), (2.5 + 1.9 + 2.6) / 3, 1e-9);  // n = 3 trims nothing
  EXPECT_GE(std::stod(curves[2][5]), 1.9 - 1e-12);
  EXPECT_LE(std::stod(curves[2][6]), 2.6 + 1e-12);
  EXPECT_EQ(curves[4][0], "model.d_model=128");
  EXPECT_EQ(curves[4][1], "0");
  EXPECT_NEAR(std::stod(curves[4][3]), 3.0, 1e-9);
  EXPECT_NEAR(std::stod(curves[4][5]), 3.0, 1e-9);

  // --python none: the tables without plots, and no warning about them.
  o.python = "none";
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  testing::internal::GetCapturedStdout();
  const std::string quiet = testing::internal::GetCapturedStderr();
  EXPECT_EQ(quiet.find("plot"), std::string::npos) << quiet;
  EXPECT_NE(quiet.find("wrote compare.md"), std::string::npos) << quiet;
  fs::remove_all(sweep);
}

TEST(Compare, ModeMaxFlipsTheImprovement) {
  const std::string sweep = make_sweep();
  CompareSettings settings;
  settings.metric = "val/loss";
  settings.minimize = false;
  settings.reps = 200;
  const Comparison c =
      compare_groups(load_run_set({sweep}, "val/loss", {}, "eval", same_setup()), settings);
  ASSERT_EQ(c.improvements.size(), 2u);
  EXPECT_EQ(c.improvements[0].x, 0u);
  EXPECT_EQ(c.improvements[0].p, 0.0);
  EXPECT_EQ(c.improvements[1].p, 1.0);
  EXPECT_NEAR(c.groups[0].tasks[0].best_mean, (3.0 + 3.1 + 3.2) / 3, 1e-12);  // max of each run
  // Profiles count runs above tau when maximising: A's finals are 2.0-2.2, B's 2.5-2.7.
  for (const auto& p : c.profiles[0]) {
    if (p.tau > 2.2) {
      EXPECT_EQ(p.fraction.value, 0.0) << p.tau;
    }
  }
  for (const auto& p : c.profiles[1]) {
    if (p.tau < 2.5) {
      EXPECT_EQ(p.fraction.value, 1.0) << p.tau;
    }
  }
  EXPECT_TRUE(minimize_metric("val/loss", "auto"));
  EXPECT_TRUE(minimize_metric("td_error", "auto"));
  EXPECT_FALSE(minimize_metric("episode_return", "auto"));
  EXPECT_THROW(minimize_metric("x", "lowest"), stoch::InputError);
  fs::remove_all(sweep);
}

// --step: each run's value at the step (or its last before it), and its best up to there.
TEST(Compare, AtStepTakesEachRunsValueThere) {
  const std::string sweep = make_sweep();
  CompareSettings settings;
  settings.metric = "val/loss";
  settings.reps = 100;
  settings.at_step = 60;  // a-s1's step 75 is after it: every run's step-50 value
  const Comparison c =
      compare_groups(load_run_set({sweep}, "val/loss", {}, "eval", same_setup()), settings);
  const auto& a = c.groups[0].tasks[0];
  EXPECT_EQ(a.finals, (std::vector<double>{2.5, 1.9, 2.6}));
  EXPECT_EQ(a.final_step_min, 50);
  EXPECT_EQ(a.final_step_max, 50);
  EXPECT_NEAR(a.best_mean, (2.5 + 1.9 + 2.6) / 3, 1e-12);  // the later 2.0-2.2 do not count
  EXPECT_NE(markdown_report(c).find("values at step 60"), std::string::npos);
  settings.at_step = 80;
  EXPECT_EQ(compare_groups(load_run_set({sweep}, "val/loss", {}, "eval", same_setup()), settings)
                .groups[0]
                .tasks[0]
                .finals,
            (std::vector<double>{2.3, 1.9, 2.6}));
  fs::remove_all(sweep);
}

TEST(Compare, DefaultMetricIsTheTasks) {
  const std::string sweep = make_sweep();
  EXPECT_EQ(default_metric({sweep}, task_metrics()), "val/loss");
  const std::string rl = stoch::test::temp_dir("compare");
  for (const auto& [task, metric] : std::vector<std::pair<std::string, std::string>>{
           {"dqn", "eval/return_mean"}, {"value_regression", "fit/mse"}}) {
    write(fs::path(rl) / task / "config.yaml", "task: " + task + "\n");
    EXPECT_EQ(default_metric({rl + "/" + task}, task_metrics()), metric);
  }
  write(fs::path(rl) / "other" / "config.yaml", "task: other\n");
  EXPECT_THROW(default_metric({rl + "/other"}, task_metrics()), stoch::InputError);
  fs::remove_all(sweep);
  fs::remove_all(rl);
}

TEST(Compare, OneGroupIsLabelledByRunNameAndWritesNoFilesByDefault) {
  const std::string sweep = make_sweep();
  CompareOptions o = options();
  o.paths = {sweep + "/a-s1", sweep + "/a-s2"};
  o.task_metrics = task_metrics();
  o.reps = 100;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  const std::string out = testing::internal::GetCapturedStdout();
  testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("| a-s1 | 2 |"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(fs::path(sweep) / "a-s1" / "compare"));
  EXPECT_FALSE(fs::exists(fs::path(sweep) / "compare"));
  fs::remove_all(sweep);
}

// Options comparing `paths` by their task's metric, with few resamples.
CompareOptions quick_options(const std::vector<std::string>& paths) {
  CompareOptions o = options();
  o.paths = paths;
  o.task_metrics = task_metrics();
  o.reps = 100;
  return o;
}

// What run_compare(o) warns (it must succeed).
std::string warnings_of(const CompareOptions& o) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  testing::internal::GetCapturedStdout();
  return testing::internal::GetCapturedStderr();
}

// --mode auto reads the direction of stoch's own metrics from their words (diag/kl was taken as
// higher-is-better, so the worse model won with probability 1), and says when it cannot tell.
TEST(Compare, AutoModeKnowsTheDirectionOfStochsMetrics) {
  for (const char* lower :
       {"val/loss", "val/bpb", "val/bayes_loss", "fit/mse", "chess/log_loss", "chess/value_mse",
        "diag/kl", "diag/nll", "diag/nll_freq2", "diag/ce_probe", "diag/ce_bigram",
        "diag/value_gap", "diag/calibration_gap", "diag/dormant", "td_error", "valloss"}) {
    EXPECT_EQ(metric_direction(lower), std::optional<bool>(true)) << lower;
    EXPECT_TRUE(minimize_metric(lower, "auto")) << lower;
  }
  for (const char* higher :
       {"eval/return_mean", "train/return", "chess/action_accuracy", "chess/kendall_tau",
        "diag/effective_rank", "diag/surplus", "chess/mate_in_2_accuracy", "episode_return"})
    EXPECT_EQ(metric_direction(higher), std::optional<bool>(false)) << higher;
  for (const char* neither : {"diag/entropy", "diag/true_entropy", "eval/return_std",
                              "eval/length_mean", "diag/uniformity", "tickle"})
    EXPECT_EQ(metric_direction(neither), std::nullopt) << neither;

  const fs::path sweep = stoch::test::temp_dir("compare-mode");
  for (int seed = 1; seed <= 2; ++seed)
    for (int d_model : {64, 128})
      write_run(sweep / ("d" + std::to_string(d_model) + "-s" + std::to_string(seed)), d_model,
                seed, 2, {3.0, 2.5, 2.0},
                R"({"step": 100, "split": "diag", "diag/kl": 0.5, "diag/uniformity": )" +
                    std::to_string(d_model) + "}\n");
  CompareOptions o = quick_options({sweep.string()});
  o.metric = "diag/uniformity";
  EXPECT_NE(warnings_of(o).find("--mode auto cannot tell from its name whether diag/uniformity "
                                "is better lower or higher; taking higher"),
            std::string::npos);
  o.metric = "diag/kl";
  EXPECT_EQ(warnings_of(o).find("cannot tell"), std::string::npos);
  fs::remove_all(sweep);
}

TEST(Compare, RunsStillBeingWrittenAreNamed) {
  const std::string sweep = make_sweep();
  CompareOptions o = quick_options({sweep});
  auto warnings = [&] { return warnings_of(o); };
  EXPECT_EQ(warnings().find("still being written"), std::string::npos);
  {
    stoch::RunLock writer(sweep + "/a-s2");  // as a train or resume holds it
    const std::string err = warnings();
    EXPECT_NE(err.find("1 run is still being written (a-s2): their last values are not final"),
              std::string::npos)
        << err;
  }
  EXPECT_EQ(warnings().find("still being written"), std::string::npos);
  // A run that has only just started has no metric yet: left out while it is being written,
  // an error once nothing writes it.
  write_run(fs::path(sweep) / "a-s4", 64, 4, 3, {});
  {
    stoch::RunLock writer(sweep + "/a-s4");
    const std::string err = warnings();
    EXPECT_NE(err.find("1 run still being written and without val/loss yet (a-s4): left out"),
              std::string::npos)
        << err;
  }
  testing::internal::CaptureStderr();
  EXPECT_THROW(run_compare(o), stoch::InputError);
  testing::internal::GetCapturedStderr();
  fs::remove_all(sweep);

  // Every run just started: nothing to compare yet, said as such.
  const fs::path fresh = stoch::test::temp_dir("compare-fresh");
  write_run(fresh / "r1", 64, 1, 3, {});
  write_run(fresh / "r2", 64, 2, 3, {});
  stoch::RunLock w1((fresh / "r1").string()), w2((fresh / "r2").string());
  o.paths = {fresh.string()};
  try {
    run_compare(o);
    ADD_FAILURE() << "no error";
  } catch (const stoch::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no run has logged val/loss yet (2 runs still being "
                                         "written)"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(fresh);
}

// A run that stopped before its train.steps, or whose metric went non-finite, is scored by its
// last finite value: each is named, as are groups whose runs end at other steps than others'.
TEST(Compare, RunsEndingEarlyOrNotFiniteAreNamed) {
  const std::string sweep = make_sweep();
  const CompareOptions o = quick_options({sweep});
  auto warnings = [&] { return warnings_of(o); };
  const std::string clean = warnings();
  EXPECT_EQ(clean.find("stopped early"), std::string::npos) << clean;
  EXPECT_EQ(clean.find("not finite"), std::string::npos) << clean;
  EXPECT_EQ(clean.find("groups end at different steps"), std::string::npos) << clean;

  // b-s2's val/loss became NaN at step 100 (written as null); b-s1 stopped at step 50 of 100.
  write_run(fs::path(sweep) / "more" / "b-s2", 128, 2, 3, {3.0, 2.9},
            R"({"step": 100, "split": "eval", "val/loss": null})"
            "\n");
  write_run(fs::path(sweep) / "more" / "b-s1", 128, 1, 3, {3.0, 2.8});
  const std::string err = warnings();
  EXPECT_NE(err.find("b-s2: val/loss is not finite (null) at step 100; its last finite value, "
                     "of step 50, stands for it"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("b-s1: its last val/loss is of step 50 of 100 (the run stopped early"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("groups end at different steps (model.d_model=64: 100, "
                     "model.d_model=128: 50-100); --step N compares them at one step"),
            std::string::npos)
      << err;
  fs::remove_all(sweep);
}

TEST(Compare, BadInputNamesThePath) {
  const std::string sweep = make_sweep();
  auto message = [](const std::vector<std::string>& paths, const std::string& metric) {
    try {
      load_run_groups(paths, metric, "eval", same_setup());
    } catch (const stoch::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({sweep + "/nope"}, "val/loss").find(sweep + "/nope"), std::string::npos);
  fs::create_directories(sweep + "/empty/deeper");
  EXPECT_NE(message({sweep + "/empty"}, "val/loss").find("no runs found"), std::string::npos);
  // A path whose runs an earlier path already found still has runs (it was "no runs found").
  EXPECT_EQ(find_run_dirs({sweep, sweep + "/more"}).size(), 6u);
  EXPECT_EQ(find_run_dirs({sweep + "/a-s1", sweep + "/a-s1"}).size(), 1u);
  const std::string missing = message({sweep}, "val/bpb");
  EXPECT_NE(missing.find("metrics.jsonl"), std::string::npos) << missing;
  EXPECT_NE(missing.find("val/bpb"), std::string::npos) << missing;
  // Falls back to a split that has the metric: train loss.
  const auto groups = load_run_groups({sweep}, "loss", "eval", same_setup());
  EXPECT_EQ(groups[0].runs[0].split, "train");
  fs::remove_all(sweep);
}

// An RL-like sweep: two heads (value.loss) on two games (env.name), three seeds each; the
// support (value.v_max) is sized per game, so it follows the task. eval/return_mean is at the
// random level at step 0 (breakout 0, pong -20) and at `finals` at step 200.
void write_rl_run(const fs::path& dir, const std::string& env, const std::string& loss, int seed,
                  double final_return) {
  const double random = env == "pong" ? -20 : 0;
  write(dir / "config.yaml", "run:\n  name: " + dir.filename().string() +
                                 "\n  seed: " + std::to_string(seed) +
                                 "\ntask: dqn\nenv:\n  name: " + env + "\nvalue:\n  loss: " + loss +
                                 "\n  v_max: " + (env == "pong" ? "21" : "10") + "\n");
  std::ostringstream m;
  m << R"({"step": 0, "split": "eval", "eval/return_mean": )" << random << "}\n";
  m << R"({"step": 100, "split": "eval", "eval/return_mean": )" << (random + final_return) / 2
    << "}\n";
  m << R"({"step": 200, "split": "eval", "eval/return_mean": )" << final_return << "}\n";
  write(dir / "metrics.jsonl", m.str());
}

std::string make_rl_sweep() {
  const fs::path sweep = stoch::test::temp_dir("compare-rl");
  const std::map<std::pair<std::string, std::string>, std::vector<double>> finals = {
      {{"breakout", "mse"}, {2, 4, 6}},
      {{"breakout", "hl_gauss"}, {8, 9, 10}},
      {{"pong", "mse"}, {-20, -10, 0}},
      {{"pong", "hl_gauss"}, {0, 10, 30}}};
  for (const auto& [key, values] : finals)
    for (int s = 0; s < 3; ++s)
      write_rl_run(sweep / (key.first + "-" + key.second + "-s" + std::to_string(s)), key.first,
                   key.second, s, values[s]);
  // breakout: (x - 0) / 10; pong: (x + 20) / 40.
  write(sweep / "normalize.yaml",
        "breakout: {random: 0, reference: 10}\npong: {random: -20, reference: 20}\n");
  return sweep.string();
}

std::map<std::string, std::vector<double>> read_aggregates(const fs::path& path) {
  std::map<std::string, std::vector<double>> out;  // "group/statistic" -> value, lo, hi
  const auto rows = read_csv(path);
  for (size_t i = 1; i < rows.size(); ++i)
    out[rows[i][0] + "/" + rows[i][1]] = {std::stod(rows[i][2]), std::stod(rows[i][3]),
                                          std::stod(rows[i][4])};
  return out;
}

TEST(Compare, TasksAreNamedByTheTaskKeyAndKeysThatFollowThemDoNotSplitGroups) {
  const std::string sweep = make_rl_sweep();
  const RunSet set = load_run_set({sweep}, "eval/return_mean", {"env.name"}, "eval", same_setup());
  EXPECT_EQ(set.tasks, (std::vector<std::string>{"breakout", "pong"}));
  EXPECT_EQ(set.following_keys, (std::vector<std::string>{"value.v_max"}));
  ASSERT_EQ(set.groups.size(), 2u);
  EXPECT_EQ(set.groups[0].label, "value.loss=hl_gauss");
  EXPECT_EQ(set.groups[1].label, "value.loss=mse");
  EXPECT_EQ(set.groups[0].runs.size(), 6u);
  // Without the task key, every game x head is a group of its own.
  EXPECT_EQ(load_run_set({sweep}, "eval/return_mean", {}, "eval", same_setup()).groups.size(), 4u);
  EXPECT_TRUE(set.absent_task_keys.empty());

  // A task key no run has puts every run on one task: an error when the user named it (a typo),
  // not when it is the default (env.name for runs without environments).
  EXPECT_EQ(
      load_run_set({sweep}, "eval/return_mean", {"env.nam"}, "eval", same_setup()).absent_task_keys,
      (std::vector<std::string>{"env.nam"}));
  CompareOptions o = options();
  o.paths = {sweep};
  o.task_metrics = task_metrics();
  o.task_keys = {"env.nam"};
  o.task_keys_given = true;
  o.reps = 10;
  try {
    run_compare(o);
    ADD_FAILURE() << "no error";
  } catch (const stoch::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--task-key env.nam: no run's config.yaml has this key"),
              std::string::npos)
        << e.what();
  }

  // A group that lacks a task is refused, naming both.
  fs::remove_all(sweep + "/pong-mse-s0");
  fs::remove_all(sweep + "/pong-mse-s1");
  fs::remove_all(sweep + "/pong-mse-s2");
  try {
    load_run_set({sweep}, "eval/return_mean", {"env.name"}, "eval", same_setup());
    ADD_FAILURE() << "no error";
  } catch (const stoch::InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("value.loss=mse"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"pong\""), std::string::npos) << msg;
  }
  fs::remove_all(sweep);
}

TEST(Compare, AggregatesNormalisedScoresOverTasksAndSeeds) {
  const std::string sweep = make_rl_sweep();
  CompareOptions o = options();
  o.paths = {sweep};
  o.task_metrics = task_metrics();
  o.normalize = sweep + "/normalize.yaml";
  o.reps = 500;
  o.python = "none-such-python";
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  const std::string out = testing::internal::GetCapturedStdout();
  testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("12 runs in 2 groups on 2 tasks (env.name)"), std::string::npos) << out;
  EXPECT_NE(out.find("value.v_max"), std::string::npos) << out;

  // Normalised finals: mse {.2 .4 .6 | 0 .25 .5}, hl_gauss {.8 .9 1 | .5 .75 1.25}.
  const auto agg = read_aggregates(fs::path(sweep) / "compare" / "aggregates.csv");
  EXPECT_NEAR(agg.at("value.loss=mse/iqm")[0], (0.2 + 0.25 + 0.4 + 0.5) / 4, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=mse/mean")[0], (0.4 + 0.25) / 2, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=mse/median")[0], (0.4 + 0.25) / 2, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=mse/optimality_gap")[0], 1 - 1.95 / 6, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=hl_gauss/iqm")[0], (0.75 + 0.8 + 0.9 + 1.0) / 4, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=hl_gauss/mean")[0], (0.9 + 2.5 / 3) / 2, 1e-12);
  EXPECT_NEAR(agg.at("value.loss=hl_gauss/optimality_gap")[0], 1 - 4.95 / 6, 1e-12);
  for (const auto& [name, v] : agg) {
    EXPECT_LE(v[1], v[0] + 1e-12) << name;
    EXPECT_GE(v[2], v[0] - 1e-12) << name;
  }
  // The IQM's interval resamples runs within tasks: no replicate mixes in the other group.
  EXPECT_GE(agg.at("value.loss=hl_gauss/iqm")[1], 0.5);

  // Breakout: every hl_gauss run beats every mse run; pong: 8.5 of 9 pairs.
  const auto imp = read_csv(fs::path(sweep) / "compare" / "improvements.csv");
  ASSERT_EQ(imp.size(), 3u);
  EXPECT_EQ(imp[1][0], "value.loss=hl_gauss");
  EXPECT_NEAR(std::stod(imp[1][2]), (1 + 8.5 / 9) / 2, 1e-12);

  // The curve starts at the random level on both games (0 normalised) and ends at the IQM.
  const auto curves = read_csv(fs::path(sweep) / "compare" / "curves.csv");
  ASSERT_EQ(curves.size(), 7u);
  EXPECT_EQ(curves[1][1], "0");
  EXPECT_EQ(curves[1][2], "6");
  EXPECT_NEAR(std::stod(curves[1][4]), 0.0, 1e-12);
  EXPECT_NEAR(std::stod(curves[3][4]), agg.at("value.loss=hl_gauss/iqm")[0], 1e-12);

  // Profiles: taus span [0, 1.25]; above 1.0 are one hl_gauss run of six and no mse run.
  const auto profiles = read_csv(fs::path(sweep) / "compare" / "profiles.csv");
  bool checked = false;
  for (size_t i = 1; i < profiles.size(); ++i) {
    if (std::abs(std::stod(profiles[i][1]) - 1.0) > 1e-9) continue;
    EXPECT_NEAR(std::stod(profiles[i][2]), profiles[i][0] == "value.loss=mse" ? 0.0 : 1.0 / 6,
                1e-12);
    checked = true;
  }
  EXPECT_TRUE(checked);

  // Per task, the raw values stay in the metric's units.
  const auto table = read_csv(fs::path(sweep) / "compare" / "compare.csv");
  ASSERT_EQ(table.size(), 5u);
  EXPECT_EQ(table[2][0], "value.loss=hl_gauss");
  EXPECT_EQ(table[2][1], "pong");
  EXPECT_EQ(table[0][7], "iqm");
  EXPECT_NEAR(std::stod(table[2][7]), 40.0 / 3, 1e-9);  // 12 digits in the CSV
  fs::remove_all(sweep);
}

// scripts/compare_table.py: one row per task and label, one column per group.
TEST(Compare, CompareTableScriptJoinsSeveralComparisons) {
  STOCH_REQUIRE(stoch::test::python_missing("csv"));
  const std::string sweep = make_rl_sweep();
  for (const char* step : {"100", "200"}) {
    CompareOptions o = options();
    o.paths = {sweep};
    o.task_metrics = task_metrics();
    o.reps = 100;
    o.at_step = std::stoi(step);
    o.out_dir = sweep + "/at" + step;
    o.python = "none-such-python";
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    EXPECT_EQ(run_compare(o), 0);
    testing::internal::GetCapturedStdout();
    testing::internal::GetCapturedStderr();
  }
  const auto r =
      stoch::test::run_command("'" + stoch::test::python_path() + "' '" +
                               stoch::test::source_path("scripts/compare_table.py") +
                               "' 100=" + sweep + "/at100 200=" + sweep + "/at200 --short-groups");
  ASSERT_EQ(r.code, 0) << r.output;
  // hl_gauss on pong ends at 0, 10, 30 (IQM of three: their mean), halfway there at step 100.
  EXPECT_NE(r.output.find("| task | at | hl_gauss | mse |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| pong | 200 | 13.3 ["), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| pong | 100 | -3.33 ["), std::string::npos) << r.output;
  fs::remove_all(sweep);
}

TEST(Compare, BadNormalisationNamesTheFileAndTask) {
  const std::string sweep = make_rl_sweep();
  auto message = [&](const std::string& yaml, const std::vector<std::string>& task_keys) {
    write(fs::path(sweep) / "n.yaml", yaml);
    CompareOptions o = options();
    o.paths = {sweep};
    o.task_metrics = task_metrics();
    o.normalize = sweep + "/n.yaml";
    o.task_keys = task_keys;
    o.reps = 10;
    o.out_dir = sweep + "/never";
    try {
      run_compare(o);
    } catch (const stoch::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string file = sweep + "/n.yaml";
  const std::string missing = message("breakout: {random: 0, reference: 10}\n", {"env.name"});
  EXPECT_NE(missing.find(file + ": no scores for task \"pong\""), std::string::npos) << missing;
  const std::string mixed =
      message("breakout: {random: 0, reference: 10}\npong: {min: 0, max: 1}\n", {"env.name"});
  EXPECT_NE(mixed.find(file + ":2: pong: mixes"), std::string::npos) << mixed;
  const std::string equal = message("breakout: {min: 3, max: 3}\n", {"env.name"});
  EXPECT_NE(equal.find("min equals max"), std::string::npos) << equal;
  const std::string turned =
      message("breakout: {min: 10, max: 0}\npong: {min: -20, max: 20}\n", {"env.name"});
  EXPECT_NE(turned.find(file + ":1: breakout: min is above max"), std::string::npos) << turned;
  const std::string text = message("breakout: {random: zero, reference: 1}\n", {"env.name"});
  EXPECT_NE(text.find("breakout.random: expected a finite number"), std::string::npos) << text;
  const std::string form = message("breakout: 10\n", {"env.name"});
  EXPECT_NE(form.find("expected {random: R, reference: S}"), std::string::npos) << form;
  const std::string no_task = message("breakout: {min: 0, max: 1}\n", {});
  EXPECT_NE(no_task.find("the runs have no task key"), std::string::npos) << no_task;
  EXPECT_FALSE(fs::exists(sweep + "/never"));
  fs::remove_all(sweep);
}

TEST(Compare, PlotsCurvesWithPython) {
  STOCH_REQUIRE(stoch::test::python_missing("matplotlib"));
  const std::string sweep = make_sweep();
  CompareOptions o = options();
  o.paths = {sweep};
  o.task_metrics = task_metrics();
  o.out_dir = sweep + "/out";
  o.reps = 100;
  o.python = stoch::test::python_path();
  o.plot_script = stoch::test::source_path("scripts/plot_compare.py");
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_compare(o), 0);
  testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(fs::is_regular_file(o.out_dir + "/curves.png")) << err;
  EXPECT_TRUE(fs::is_regular_file(o.out_dir + "/curves.svg")) << err;
  EXPECT_TRUE(fs::is_regular_file(o.out_dir + "/profiles.png")) << err;
  EXPECT_TRUE(fs::is_regular_file(o.out_dir + "/aggregates.png")) << err;
  fs::remove_all(sweep);
}

}  // namespace
