// `stoch compare` on fake run directories: discovery, grouping by config, labels, and the
// numbers in compare.md / compare.csv / curves.csv.
#include <gtest/gtest.h>
#include <unistd.h>

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
#include "test_util.h"
#include "train/task.h"

namespace {

namespace fs = std::filesystem;
using namespace stoch::analysis;

// What the cli passes: each registered task's primary metric.
std::map<std::string, std::string> task_metrics() {
  std::map<std::string, std::string> out;
  for (const auto& name : stoch::registry<stoch::train::TaskEntry>().names())
    out[name] = stoch::registry<stoch::train::TaskEntry>().get(name, "task").primary_metric;
  return out;
}

std::string make_temp_dir(const std::string& tag) {
  static int counter = 0;
  const fs::path p =
      fs::temp_directory_path() /
      ("stoch-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
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
            "\ntask: lm\nmodel:\n  d_model: " + std::to_string(d_model) +
            "\n  n_layer: 2\ntrain:\n  steps: 100\n  keep_last: " + std::to_string(keep_last) +
            "\nlog:\n  every: " + std::to_string(10 * seed) + "\n");
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
// A's runs differ in seed, threads, keep_last and log.every, none of which splits a group.
std::string make_sweep() {
  const fs::path sweep = make_temp_dir("compare");
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

TEST(Compare, GroupsRunsByConfigAndLabelsByDifferingKey) {
  const std::string sweep = make_sweep();
  const auto groups = load_run_groups({sweep}, "val/loss");
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
  CompareOptions o;
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
  EXPECT_EQ(table[1][1], "3");
  // IQM CI of three finals resampled: within their range, and the range's ends reachable.
  EXPECT_NEAR(std::stod(table[1][6]), 2.0, 1e-9);
  EXPECT_NEAR(std::stod(table[1][7]), 2.2, 1e-9);

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
  fs::remove_all(sweep);
}

TEST(Compare, ModeMaxFlipsTheImprovement) {
  const std::string sweep = make_sweep();
  const auto groups = load_run_groups({sweep}, "val/loss");
  const Comparison c = compare_groups(groups, "val/loss", /*minimize=*/false, 200);
  ASSERT_EQ(c.improvements.size(), 2u);
  EXPECT_EQ(c.improvements[0].x, 0u);
  EXPECT_EQ(c.improvements[0].p, 0.0);
  EXPECT_EQ(c.improvements[1].p, 1.0);
  EXPECT_NEAR(c.groups[0].best_mean, (3.0 + 3.1 + 3.2) / 3, 1e-12);  // max of each run
  EXPECT_TRUE(minimize_metric("val/loss", "auto"));
  EXPECT_TRUE(minimize_metric("td_error", "auto"));
  EXPECT_FALSE(minimize_metric("episode_return", "auto"));
  EXPECT_THROW(minimize_metric("x", "lowest"), stoch::InputError);
  fs::remove_all(sweep);
}

TEST(Compare, DefaultMetricIsTheTasks) {
  const std::string sweep = make_sweep();
  EXPECT_EQ(default_metric({sweep}, task_metrics()), "val/loss");
  const std::string rl = make_temp_dir("compare");
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
  CompareOptions o;
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

TEST(Compare, BadInputNamesThePath) {
  const std::string sweep = make_sweep();
  auto message = [](const std::vector<std::string>& paths, const std::string& metric) {
    try {
      load_run_groups(paths, metric);
    } catch (const stoch::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({sweep + "/nope"}, "val/loss").find(sweep + "/nope"), std::string::npos);
  fs::create_directories(sweep + "/empty/deeper");
  EXPECT_NE(message({sweep + "/empty"}, "val/loss").find("no runs found"), std::string::npos);
  const std::string missing = message({sweep}, "val/bpb");
  EXPECT_NE(missing.find("metrics.jsonl"), std::string::npos) << missing;
  EXPECT_NE(missing.find("val/bpb"), std::string::npos) << missing;
  // Falls back to a split that has the metric: train loss.
  const auto groups = load_run_groups({sweep}, "loss");
  EXPECT_EQ(groups[0].runs[0].split, "train");
  fs::remove_all(sweep);
}

TEST(Compare, PlotsCurvesWithPython) {
  STOCH_REQUIRE(stoch::test::python_missing("matplotlib"));
  const std::string sweep = make_sweep();
  CompareOptions o;
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
  fs::remove_all(sweep);
}

}  // namespace
