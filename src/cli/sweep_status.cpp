#include "cli/sweep_status.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <queue>

#include "cli/run_dir.h"
#include "core/errors.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "train/experiment.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

// The run's pace from the "train" lines in the file's tail (metrics files of long runs are
// large): the median of seconds per step over the gaps between consecutive lines, so that one
// long gap (a run paused with SIGSTOP, a machine asleep) does not set it; the last line's
// elapsed_s / step when there are fewer than three gaps. A line still being written does not
// parse and is passed over; a gap across a resume (the step goes back) is skipped. Also notes
// the last step the tail's "eval" lines name.
void read_pace(const std::string& metrics, Progress& p) {
  std::ifstream in(metrics, std::ios::binary | std::ios::ate);
  if (!in) return;
  constexpr std::streamoff kTail = 64 * 1024;
  const std::streamoff size = in.tellg();
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  std::string tail(static_cast<size_t>(std::min(size, kTail)), '\0');
  if (!in.read(tail.data(), static_cast<std::streamsize>(tail.size()))) return;
  std::vector<std::pair<int64_t, double>> points;  // (step, elapsed_s), in file order
  for (const auto& line : split(tail, '\n')) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    if (j.value("split", "") == "eval") {
      const auto step = j.find("step");
      if (step != j.end() && step->is_number_integer())
        p.evaluated_step = std::max(p.evaluated_step, step->get<int64_t>());
      continue;
    }
    if (j.value("split", "") != "train") continue;
    const auto step = j.find("step");
    const auto elapsed = j.find("elapsed_s");
    if (step == j.end() || elapsed == j.end() || !step->is_number_integer() ||
        !elapsed->is_number())
      continue;
    points.emplace_back(step->get<int64_t>(), elapsed->get<double>());
  }
  if (points.empty() || points.back().first <= 0 || points.back().second <= 0) return;
  p.logged_step = points.back().first;
  std::vector<double> gaps;
  for (size_t i = 1; i < points.size(); ++i) {
    const int64_t ds = points[i].first - points[i - 1].first;
    const double de = points[i].second - points[i - 1].second;
    if (ds > 0 && de > 0) gaps.push_back(de / static_cast<double>(ds));
  }
  if (gaps.size() >= 3) {
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    p.seconds_per_step = gaps[gaps.size() / 2];
  } else {
    p.seconds_per_step = points.back().second / static_cast<double>(points.back().first);
  }
}

}  // namespace

Progress progress_of(const std::string& dir, int64_t steps) {
  Progress p;
  p.steps = steps;
  const auto saved = CheckpointStore(dir).steps();
  if (!fs::is_regular_file(dir + "/config.yaml")) {
    read_pace(dir + "/metrics.jsonl", p);  // a first run not yet at its first checkpoint
    return p;
  }
  check_run_config_whole(dir + "/config.yaml");
  const auto cfg = train::parse_experiment(train::load_config(dir + "/config.yaml", {}));
  if (saved.empty()) {
    read_pace(dir + "/metrics.jsonl", p);
    // A run kept as results only (config.yaml and metrics.jsonl copied off the machine, its
    // checkpoints dropped) is finished when its metrics reach its last step's evaluation, so a
    // sweep continued elsewhere from those results skips it instead of training it again. (A run
    // killed in that evaluation, before its first checkpoint, has only the train line.)
    if (p.logged_step >= cfg.train.steps && p.evaluated_step >= cfg.train.steps) {
      p.steps = cfg.train.steps;
      p.step = p.logged_step;
      p.state = RunState::kFinished;
      p.results_only = true;
    }
    return p;
  }
  p.steps = cfg.train.steps;
  p.step = saved.back();
  p.state = saved.back() >= cfg.train.steps ? RunState::kFinished : RunState::kInterrupted;
  read_pace(dir + "/metrics.jsonl", p);
  return p;
}

std::optional<double> pace_here_over_kept(const std::vector<Progress>& runs,
                                          const std::vector<std::string>& groups) {
  std::map<std::string, std::pair<double, int>> kept;  // sum of paces, count
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!runs[i].results_only || runs[i].seconds_per_step <= 0) continue;
    kept[groups[i]].first += runs[i].seconds_per_step;
    kept[groups[i]].second += 1;
  }
  double log_sum = 0;
  int n = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto g = kept.find(groups[i]);
    if (runs[i].results_only || runs[i].seconds_per_step <= 0 || g == kept.end()) continue;
    log_sum += std::log(runs[i].seconds_per_step * g->second.second / g->second.first);
    ++n;
  }
  if (n == 0) return std::nullopt;
  return std::exp(log_sum / n);
}

std::optional<double> time_left(const std::vector<Progress>& runs,
                                const std::vector<std::string>& groups, int64_t jobs) {
  const double kept_scale = pace_here_over_kept(runs, groups).value_or(1.0);
  std::map<std::string, std::pair<double, int>> by_group;  // sum of paces, count
  // A grid point with no runs yet is timed at this machine's pace when it has one: the kept runs'
  // paces may be unscaled (no grid point with runs of both kinds) or scaled by a rough ratio.
  std::pair<double, int> all, here;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].seconds_per_step <= 0) continue;
    const double pace = runs[i].seconds_per_step * (runs[i].results_only ? kept_scale : 1.0);
    const auto add = [pace](std::pair<double, int>& sum) {
      sum.first += pace;
      sum.second += 1;
    };
    add(by_group[groups[i]]);
    add(all);
    if (!runs[i].results_only) add(here);
  }
  // The pace of a grid point with no pace of its own.
  const auto& sweep = here.second > 0 ? here : all;
  std::vector<double> running, queued;  // seconds each still needs
  for (size_t i = 0; i < runs.size(); ++i) {
    const Progress& p = runs[i];
    if (p.state == RunState::kFinished) continue;
    double pace = p.seconds_per_step;
    if (pace <= 0) {
      const auto g = by_group.find(groups[i]);
      if (g != by_group.end()) {
        pace = g->second.first / g->second.second;
      } else if (sweep.second > 0) {
        pace = sweep.first / sweep.second;
      } else {
        return std::nullopt;
      }
    }
    // A running run goes on from its last logged step; any other starts from its checkpoint.
    const int64_t from = p.running ? std::max(p.step, p.logged_step) : p.step;
    (p.running ? running : queued).push_back(pace * static_cast<double>(p.steps - from));
  }
  // Slots free at these times: the running runs' first, as many as there are.
  std::priority_queue<double, std::vector<double>, std::greater<>> slots;
  for (double r : running) slots.push(r);
  while (static_cast<int64_t>(slots.size()) < jobs) slots.push(0);
  double end = 0;
  for (double r : running) end = std::max(end, r);
  for (double q : queued) {
    const double start = slots.top();
    slots.pop();
    slots.push(start + q);
    end = std::max(end, start + q);
  }
  return end;
}

void refresh_progress(const std::string& out, const std::vector<SweepRun>& runs,
                      std::vector<Progress>& progress) {
  for (size_t i = 0; i < runs.size(); ++i) {
    Progress& p = progress[i];
    if (p.state == RunState::kFinished) continue;
    const std::string dir = out + "/" + runs[i].name;
    p = progress_of(dir, p.steps);
    p.running = p.state != RunState::kFinished && run_lock_owner(dir).has_value();
  }
}

namespace {

// Each run's grid point: its overrides but the seed (expand_sweep puts the seed last).
std::vector<std::string> grid_points(const std::vector<SweepRun>& runs) {
  std::vector<std::string> groups;
  for (const auto& r : runs)
    groups.push_back(join(std::vector<std::string>(r.sets.begin(), r.sets.end() - 1), " "));
  return groups;
}

}  // namespace

std::optional<double> sweep_time_left(const std::vector<SweepRun>& runs,
                                      const std::vector<Progress>& progress, int64_t jobs) {
  return time_left(progress, grid_points(runs), jobs);
}

std::string sweep_summary(const std::vector<SweepRun>& runs, const std::vector<Progress>& progress,
                          int64_t jobs) {
  const auto finished = std::count_if(progress.begin(), progress.end(), [](const Progress& p) {
    return p.state == RunState::kFinished;
  });
  std::string s = str(finished, " of ", runs.size(), " runs finished");
  if (static_cast<size_t>(finished) < runs.size())
    if (const auto left = sweep_time_left(runs, progress, jobs))
      s += str("; about ", format_duration(*left), " of training left");
  return s;
}

int print_status(const std::string& out, const std::vector<SweepRun>& runs,
                 std::vector<Progress>& progress, int64_t jobs) {
  std::printf("| run | state | checkpointed step | steps/s |\n| --- | --- | ---: | ---: |\n");
  size_t counts[4] = {0, 0, 0, 0};  // finished, running, interrupted, not started
  double done = 0, total = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    Progress& p = progress[i];
    const auto owner = run_lock_owner(out + "/" + runs[i].name);
    p.running = p.state != RunState::kFinished && owner.has_value();
    std::string state;
    if (p.state == RunState::kFinished) {
      state = "finished";
      ++counts[0];
    } else if (p.running) {
      state = "running (" + *owner + ")";
      ++counts[1];
    } else if (p.state == RunState::kInterrupted) {
      state = "interrupted";
      ++counts[2];
    } else {
      state = "not started";
      ++counts[3];
    }
    const std::string rate =
        p.seconds_per_step > 0 ? format_number(1 / p.seconds_per_step, 3) : std::string("-");
    std::printf("| %s | %s | %s | %s |\n", runs[i].name.c_str(), state.c_str(),
                stoch::str(p.step, " of ", p.steps).c_str(), rate.c_str());
    done += static_cast<double>(std::min(p.step, p.steps));
    total += static_cast<double>(p.steps);
  }
  std::printf(
      "\n%s: %zu runs: %zu finished, %zu running, %zu interrupted, %zu not started; %s%% "
      "of their steps checkpointed\n",
      out.c_str(), runs.size(), counts[0], counts[1], counts[2], counts[3],
      format_number(total > 0 ? 100 * done / total : 0, 3).c_str());
  if (counts[0] == runs.size()) return kExitOk;
  const auto groups = grid_points(runs);
  if (const auto left = time_left(progress, groups, jobs)) {
    std::printf(
        "about %s of training left, %lld at a time, at the pace each run (else its grid point, "
        "else the sweep) has shown; evaluations and checkpoints come on top\n",
        format_duration(*left).c_str(), static_cast<long long>(jobs));
    const bool kept = std::any_of(progress.begin(), progress.end(),
                                  [](const Progress& p) { return p.results_only; });
    if (const auto scale = pace_here_over_kept(progress, groups)) {
      std::printf(
          "(runs kept as results only were trained elsewhere: their paces count %sx, the time per "
          "step of this machine's runs over theirs on the same grid points)\n",
          format_number(*scale, 3).c_str());
    } else if (kept) {
      std::printf(
          "(runs kept as results only were trained elsewhere, and no grid point has runs trained "
          "here too, so their paces count as they are)\n");
    }
  } else {
    std::printf("no run has logged a training step yet, so no estimate of the time left\n");
  }
  return kExitOk;
}

}  // namespace stoch::cli
