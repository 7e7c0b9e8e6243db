// compare's output: the Markdown report, the CSV files, the plots, and the command itself.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "analysis/compare.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/output_dir.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace fs = std::filesystem;

namespace stoch::analysis {
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string interval(const Interval& ci, int digits) {
  return str("[", format_number(ci.lo, digits), ", ", format_number(ci.hi, digits), "]");
}

std::string probability(double p) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", p);
  return buf;
}

std::string step_range(const TaskResult& t) {
  return t.final_step_min == t.final_step_max ? str(t.final_step_min)
                                              : str(t.final_step_min, "-", t.final_step_max);
}

// Replaced whole, so a failed write (a full disk) is reported and never leaves half a report.
void write_text(const fs::path& path, const std::string& text) {
  noting_free_space(path.string(), [&] { replace_file_durably(path.string(), text); });
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The plotting script ships in the source tree; the binary lives in BUILD_DIR below it.
std::string find_plot_script() {
  std::vector<fs::path> candidates;
#ifdef STOCH_SOURCE_DIR
  candidates.push_back(fs::path(STOCH_SOURCE_DIR) / "scripts/plot_compare.py");
#endif
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "scripts/plot_compare.py");
  candidates.push_back(fs::path("scripts/plot_compare.py"));
  for (const auto& c : candidates)
    if (fs::is_regular_file(c)) return c.string();
  return "";
}

void warn(const std::string& msg) {
  std::cerr << "stoch compare: warning: " << msg << "\n";
}

void plot(const CompareOptions& o, const Comparison& c, const fs::path& out_dir) {
  std::string python = o.python;
  if (python.empty())
    if (const char* env = std::getenv("STOCH_PYTHON")) python = env;
  if (python == "none") return;
  if (python.empty()) {
    warn("no Python given (set STOCH_PYTHON); skipping the plots");
    return;
  }
  const std::string script = o.plot_script.empty() ? find_plot_script() : o.plot_script;
  if (script.empty() || !fs::is_regular_file(script)) {
    warn("scripts/plot_compare.py not found; skipping the plots");
    return;
  }
  const std::string label = c.normalization.empty() ? c.metric : str(c.metric, " (normalised)");
  // The script's own output goes to stderr: stdout carries only the report.
  const std::string cmd =
      str(shell_quote(python), " ", shell_quote(script), " ", shell_quote(out_dir.string()),
          " --metric ", shell_quote(label), c.scores_minimize ? " --lower-is-better" : "", " 1>&2");
  std::cout.flush();
  const int status = std::system(cmd.c_str());
  if (status != 0) {
    warn(str("plotting failed (", cmd, "); the tables are written"));
    return;
  }
  std::cerr << "stoch compare: wrote curves, profiles and aggregates .png/.svg in "
            << out_dir.string() << "\n";
}

bool one_raw_task(const Comparison& c) {
  return c.tasks.size() == 1 && c.normalization.empty();
}

void single_task_table(const Comparison& c, std::ostringstream& md) {
  md << "| group | runs | final step | final (mean) | best (mean) | IQM of final | 95% CI |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const auto& g : c.groups) {
    const auto& t = g.tasks[0];
    md << "| " << md_cell(g.label) << " | " << t.finals.size() << " | " << step_range(t) << " | "
       << format_number(t.final_mean, 5) << " | " << format_number(t.best_mean, 5) << " | "
       << format_number(t.iqm.value, 5) << " | " << interval(t.iqm.ci, 5) << " |\n";
  }
  md << "\nIQM: mean of the middle half of the seeds' final values; CIs from " << c.reps
     << " bootstrap resamples of the seeds.\n";
}

void aggregate_tables(const Comparison& c, std::ostringstream& md) {
  const bool gap = !c.groups.empty() && c.groups[0].gap.has_value();
  md << "### Aggregates over " << c.tasks.size() << (c.tasks.size() == 1 ? " task" : " tasks")
     << " x runs" << (c.normalization.empty() ? "" : " (normalised final values)") << "\n\n";
  md << "| group | runs | IQM | 95% CI | median | 95% CI | mean | 95% CI |"
     << (gap ? " optimality gap | 95% CI |" : "") << "\n";
  md << "| --- | ---: | ---: | --- | ---: | --- | ---: | --- |" << (gap ? " ---: | --- |" : "")
     << "\n";
  for (const auto& g : c.groups) {
    md << "| " << md_cell(g.label) << " | " << g.runs();
    for (const Estimate* e : {&g.iqm, &g.median, &g.mean})
      md << " | " << format_number(e->value, 4) << " | " << interval(e->ci, 4);
    if (gap) md << " | " << format_number(g.gap->value, 4) << " | " << interval(g.gap->ci, 4);
    md << " |\n";
  }
  md << "\nIQM: mean of the middle half of all runs' final values; median and mean: of each "
        "task's mean over runs. ";
  if (gap)
    md << "Optimality gap: how far runs fall short of " << (c.scores_minimize ? "0" : "1")
       << ", on average. ";
  md << "CIs: " << c.reps << " stratified bootstrap resamples of the runs within each task"
     << (c.task_bootstrap ? ", tasks resampled too" : "") << ".\n\n";

  md << "### Per task: IQM of final values (" << c.metric << ", "
     << (c.minimize ? "lower" : "higher") << " is better)\n\n| group |";
  for (const auto& t : c.tasks) md << " " << md_cell(t.empty() ? "(one task)" : t) << " |";
  md << "\n| --- |";
  for (size_t t = 0; t < c.tasks.size(); ++t) md << " ---: |";
  md << "\n";
  for (const auto& g : c.groups) {
    md << "| " << md_cell(g.label) << " |";
    for (const auto& t : g.tasks)
      md << " " << format_number(t.iqm.value, 4) << " " << interval(t.iqm.ci, 4)
         << " (n=" << t.finals.size() << ") |";
    md << "\n";
  }
}

}  // namespace

std::string markdown_report(const Comparison& c) {
  size_t runs = 0;
  for (const auto& g : c.groups) runs += g.runs();
  std::ostringstream md;
  md << "## " << c.metric << " (" << (c.minimize ? "lower" : "higher") << " is better): " << runs
     << (runs == 1 ? " run" : " runs") << " in " << c.groups.size()
     << (c.groups.size() == 1 ? " group" : " groups");
  if (c.tasks.size() > 1)
    md << " on " << c.tasks.size() << " tasks (" << join(c.task_keys, ", ") << ")";
  if (c.at_step >= 0) md << ", values at step " << c.at_step;
  md << "\n\n";
  if (!c.normalization.empty())
    md << "Scores normalised per task by " << c.normalization << "; "
       << (c.scores_minimize ? "lower" : "higher") << " normalised scores are better.\n\n";
  if (!c.following_keys.empty())
    md << "Keys that change with the task only, so do not split groups: "
       << join(c.following_keys, ", ") << ".\n\n";
  if (one_raw_task(c))
    single_task_table(c, md);
  else
    aggregate_tables(c, md);
  if (!c.improvements.empty()) {
    md << "\n### Probability of improvement\n\n"
       << "P(X better than Y): the chance that a run of X ends "
       << (c.scores_minimize ? "below" : "above") << " a run of Y"
       << (c.tasks.size() > 1 ? " on the same task, averaged over tasks" : "")
       << ", ties counting half.\n\n";
    md << "| X | Y | P(X better than Y) | 95% CI |\n| --- | --- | ---: | --- |\n";
    for (const auto& imp : c.improvements)
      md << "| " << md_cell(c.groups[imp.x].label) << " | " << md_cell(c.groups[imp.y].label)
         << " | " << probability(imp.p) << " | [" << probability(imp.ci.lo) << ", "
         << probability(imp.ci.hi) << "] |\n";
  }
  return md.str();
}

void write_compare_files(const Comparison& c, const std::string& out_dir) {
  const fs::path dir(out_dir);
  make_output_dir(out_dir, "--out");
  write_text(dir / "compare.md", markdown_report(c));

  std::ostringstream table;
  table << "group,task,runs,final_step_min,final_step,final_mean,best_mean,iqm,iqm_ci_lo,"
           "iqm_ci_hi\n";
  for (const auto& g : c.groups)
    for (size_t t = 0; t < c.tasks.size(); ++t) {
      const auto& r = g.tasks[t];
      table << csv_field(g.label) << "," << csv_field(c.tasks[t]) << "," << r.finals.size() << ","
            << r.final_step_min << "," << r.final_step_max << "," << csv_number(r.final_mean) << ","
            << csv_number(r.best_mean) << "," << csv_number(r.iqm.value) << ","
            << csv_number(r.iqm.ci.lo) << "," << csv_number(r.iqm.ci.hi) << "\n";
    }
  write_text(dir / "compare.csv", table.str());

  std::ostringstream aggregates;
  aggregates << "group,statistic,value,ci_lo,ci_hi\n";
  for (const auto& g : c.groups) {
    std::vector<std::pair<const char*, const Estimate*>> rows = {
        {"iqm", &g.iqm}, {"median", &g.median}, {"mean", &g.mean}};
    if (g.gap) rows.push_back({"optimality_gap", &*g.gap});
    for (const auto& [name, e] : rows)
      aggregates << csv_field(g.label) << "," << name << "," << csv_number(e->value) << ","
                 << csv_number(e->ci.lo) << "," << csv_number(e->ci.hi) << "\n";
  }
  write_text(dir / "aggregates.csv", aggregates.str());

  std::ostringstream improvements;
  improvements << "x,y,p,ci_lo,ci_hi\n";
  for (const auto& imp : c.improvements)
    improvements << csv_field(c.groups[imp.x].label) << "," << csv_field(c.groups[imp.y].label)
                 << "," << csv_number(imp.p) << "," << csv_number(imp.ci.lo) << ","
                 << csv_number(imp.ci.hi) << "\n";
  write_text(dir / "improvements.csv", improvements.str());

  std::ostringstream curves;
  curves << "group,step,n,mean,iqm,ci_lo,ci_hi\n";
  for (size_t g = 0; g < c.groups.size(); ++g)
    for (const auto& p : c.curves[g])
      curves << csv_field(c.groups[g].label) << "," << p.step << "," << p.n << ","
             << csv_number(p.mean) << "," << csv_number(p.iqm) << "," << csv_number(p.ci.lo) << ","
             << csv_number(p.ci.hi) << "\n";
  write_text(dir / "curves.csv", curves.str());

  std::ostringstream profiles;
  profiles << "group,tau,fraction,ci_lo,ci_hi\n";
  for (size_t g = 0; g < c.groups.size(); ++g)
    for (const auto& p : c.profiles[g])
      profiles << csv_field(c.groups[g].label) << "," << csv_number(p.tau) << ","
               << csv_number(p.fraction.value) << "," << csv_number(p.fraction.ci.lo) << ","
               << csv_number(p.fraction.ci.hi) << "\n";
  write_text(dir / "profiles.csv", profiles.str());
}

int run_compare(const CompareOptions& o) {
  if (o.paths.empty()) throw InputError("compare: expected at least one run or sweep directory");
  if (o.reps < 1) throw InputError(str("--reps ", o.reps, ": expected an integer >= 1"));
  for (const auto& key : o.task_keys)
    if (key.empty()) throw InputError("--task-key: expected a config key such as env.name");
  std::optional<Normalization> norm;
  if (!o.normalize.empty()) norm = read_normalization(o.normalize);
  const std::string metric = o.metric.empty() ? default_metric(o.paths, o.task_metrics) : o.metric;
  const bool minimize = minimize_metric(metric, o.mode);
  if (o.mode == "auto" && !metric_direction(metric))
    warn(str("--mode auto cannot tell from its name whether ", metric,
             " is better lower or higher; taking higher (pass --mode min or --mode max)"));
  const RunSet set = load_run_set(o.paths, metric, o.task_keys, "eval", o.same_setup_keys);
  if (o.task_keys_given && !set.absent_task_keys.empty())
    throw InputError(str("--task-key ", set.absent_task_keys[0],
                         ": no run's config.yaml has this key (runs differing in it are on "
                         "different tasks; 'none' puts every run on one task)"));
  if (norm && set.tasks == std::vector<std::string>{""})
    throw InputError(str("--normalize ", o.normalize, ": the runs have no task key (",
                         join(o.task_keys, ", "), "); pass --task-key"));

  // A sweep still going: its runs' last values are not their final ones.
  std::vector<std::string> live;
  for (const auto& g : set.groups)
    for (const auto& run : g.runs)
      if (run.being_written) live.push_back(fs::path(run.dir).filename().string());
  const auto first = [](const std::vector<std::string>& names) {
    return names.front() + (names.size() > 1 ? ", ..." : "");
  };
  if (!live.empty())
    warn(str(live.size(), live.size() == 1 ? " run is" : " runs are", " still being written (",
             first(live), "): their last values are not final"));
  if (!set.not_yet.empty())
    warn(str(set.not_yet.size(), set.not_yet.size() == 1 ? " run" : " runs",
             " still being written and without ", metric, " yet (", first(set.not_yet),
             "): left out"));
  // Runs that ended early (a failure, a stop not resumed) or whose metric went non-finite: their
  // last finite value stands for a final one, which only its step and a look can tell.
  for (const auto& g : set.groups)
    for (const auto& run : g.runs) {
      const std::string name = fs::path(run.dir).filename().string();
      const int64_t last = run.curve.rbegin()->first;
      if (run.last_null_step > last)
        warn(str(name, ": ", metric, " is not finite (null) at step ", run.last_null_step,
                 "; its last finite value, of step ", last, ", stands for it"));
      else if (!run.being_written && run.steps > 0 && last < run.steps)
        warn(str(name, ": its last ", metric, " is of step ", last, " of ", run.steps,
                 " (the run stopped early and was not resumed)"));
    }

  // Mixing splits (eval in some runs, train in others) would compare unlike numbers: say so.
  std::set<std::string> splits;
  for (const auto& g : set.groups)
    for (const auto& run : g.runs) splits.insert(run.split);
  if (splits != std::set<std::string>{"eval"}) {
    std::string names;
    for (const auto& s : splits) names += (names.empty() ? "\"" : ", \"") + s + "\"";
    warn(str(metric, " is not in eval lines; read from split ", names));
  }
  if (set.tasks.size() > 1 && !norm)
    warn(str(set.tasks.size(), " tasks without --normalize: aggregates mix the tasks' raw scales"));
  CompareSettings settings;
  settings.metric = metric;
  settings.minimize = minimize;
  settings.reps = o.reps;
  settings.seed = o.seed;
  settings.normalization = norm ? &*norm : nullptr;
  settings.task_bootstrap = o.task_bootstrap;
  settings.at_step = o.at_step;
  const Comparison c = compare_groups(set, settings);
  for (const auto& g : c.groups)
    for (size_t t = 0; t < c.tasks.size(); ++t)
      if (g.tasks[t].final_step_min != g.tasks[t].final_step_max)
        warn(str(g.label, c.tasks[t].empty() ? "" : str(" on ", c.tasks[t]),
                 ": runs end at different steps (", g.tasks[t].final_step_min, " to ",
                 g.tasks[t].final_step_max, "); final values mix them"));
  // Groups whose runs end at different steps compare values of different training lengths.
  for (size_t t = 0; t < c.tasks.size() && c.groups.size() > 1; ++t) {
    std::string ends;
    std::set<std::pair<int64_t, int64_t>> ranges;
    for (const auto& g : c.groups) {
      const auto& r = g.tasks[t];
      ranges.insert({r.final_step_min, r.final_step_max});
      ends += str(ends.empty() ? "" : ", ", g.label, ": ", step_range(r));
    }
    if (ranges.size() > 1)
      warn(str("groups end at different steps", c.tasks[t].empty() ? "" : " on " + c.tasks[t], " (",
               ends, "); --step N compares them at one step"));
  }
  for (size_t g = 0; g < c.groups.size(); ++g)
    if (c.curves[g].empty())
      warn(str(c.groups[g].label, ": no step that every run logged; no curve"));
  std::cout << markdown_report(c);

  std::string out_dir = o.out_dir;
  if (out_dir.empty() && fs::is_directory(o.paths[0]) &&
      !fs::is_regular_file(fs::path(o.paths[0]) / "config.yaml"))
    out_dir = (fs::path(o.paths[0]) / "compare").string();
  if (out_dir.empty()) {
    std::cerr << "stoch compare: tables only; pass --out DIR to write them with learning curves\n";
    return kExitOk;
  }
  write_compare_files(c, out_dir);
  std::cerr << "stoch compare: wrote compare.md and its tables (.csv) in " << out_dir << "\n";
  plot(o, c, out_dir);
  return kExitOk;
}

}  // namespace stoch::analysis
