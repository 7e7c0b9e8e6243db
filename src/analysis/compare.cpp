#include "analysis/compare.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "core/output_dir.h"
#include "core/rng.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch::analysis {
namespace {

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double iqm_stat(const TaskScores& s) {
  return aggregate_iqm(s);
}

// Streams used by the bootstrap, so that each interval has its own reproducible seed.
enum : uint64_t { kStreamIqm = 1, kStreamImprovement = 2, kStreamCurve = 3 };

std::vector<CurvePoint> curve_over_seeds(const RunGroup& g, int reps, uint64_t seed) {
  std::vector<CurvePoint> points;
  for (const auto& [step, first_value] : g.runs[0].curve) {
    std::vector<double> values;
    for (const auto& run : g.runs) {
      const auto it = run.curve.find(step);
      if (it == run.curve.end()) break;
      values.push_back(it->second);
    }
    if (values.size() != g.runs.size()) continue;  // a step some run did not log
    CurvePoint p;
    p.step = step;
    p.n = values.size();
    p.mean = mean(values);
    p.iqm = iqm(values);
    p.ci = bootstrap_ci({values}, iqm_stat, reps, 0.95,
                        mix_seed(seed, kStreamCurve, static_cast<uint64_t>(step)));
    points.push_back(p);
  }
  return points;
}

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

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error(str(path.string(), ": cannot write"));
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

void plot_curves(const CompareOptions& o, const std::string& metric, const fs::path& out_dir) {
  std::string python = o.python;
  if (python.empty())
    if (const char* env = std::getenv("STOCH_PYTHON")) python = env;
  if (python.empty()) {
    warn("no Python given (set STOCH_PYTHON); skipping curves.png/curves.svg");
    return;
  }
  const std::string script = o.plot_script.empty() ? find_plot_script() : o.plot_script;
  if (script.empty() || !fs::is_regular_file(script)) {
    warn("scripts/plot_compare.py not found; skipping curves.png/curves.svg");
    return;
  }
  // The script's own output goes to stderr: stdout carries only the report.
  const std::string cmd =
      str(shell_quote(python), " ", shell_quote(script), " ",
          shell_quote((out_dir / "curves.csv").string()), " --metric ", shell_quote(metric),
          " --out ", shell_quote(out_dir.string()), " 1>&2");
  std::cout.flush();
  const int status = std::system(cmd.c_str());
  if (status != 0) {
    warn(str("plotting failed (", cmd, "); the tables are written"));
    return;
  }
  std::cerr << "stoch compare: wrote " << (out_dir / "curves.png").string() << " and curves.svg\n";
}

}  // namespace

bool minimize_metric(const std::string& metric, const std::string& mode) {
  if (mode == "min") return true;
  if (mode == "max") return false;
  if (mode != "auto") throw InputError(str("--mode ", mode, ": expected one of min, max, auto"));
  std::string lower = metric;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"loss", "mse", "error", "bpb"})
    if (lower.find(word) != std::string::npos) return true;
  return false;
}

std::string default_metric(const std::vector<std::string>& paths,
                           const std::map<std::string, std::string>& task_metrics) {
  const std::string config = (fs::path(find_run_dirs(paths).front()) / "config.yaml").string();
  const config::Node root = config::load_file(config);
  const config::Node* task = root.find("task");
  const std::string name = task ? task->scalar : "lm";  // lm is the config's default task
  const auto it = task_metrics.find(name);
  if (it == task_metrics.end() || it->second.empty())
    throw InputError(str(config, ": task ", name, " has no default metric; pass --metric"));
  return it->second;
}

Comparison compare_groups(const std::vector<RunGroup>& groups, const std::string& metric,
                          bool minimize, int reps, uint64_t seed) {
  Comparison c;
  c.metric = metric;
  c.minimize = minimize;
  c.reps = reps;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    GroupSummary s;
    s.label = g.label;
    std::vector<double> bests;
    s.final_step_min = g.runs[0].curve.rbegin()->first;
    s.final_step_max = s.final_step_min;
    for (const auto& run : g.runs) {
      const auto& [step, value] = *run.curve.rbegin();
      s.finals.push_back(value);
      s.final_step_min = std::min(s.final_step_min, step);
      s.final_step_max = std::max(s.final_step_max, step);
      auto best = run.curve.begin()->second;
      for (const auto& [st, v] : run.curve) best = minimize ? std::min(best, v) : std::max(best, v);
      bests.push_back(best);
    }
    s.final_mean = mean(s.finals);
    s.best_mean = mean(bests);
    s.iqm = iqm(s.finals);
    s.iqm_ci = bootstrap_ci({s.finals}, iqm_stat, reps, 0.95, mix_seed(seed, kStreamIqm, gi));
    c.groups.push_back(std::move(s));
    c.curves.push_back(curve_over_seeds(g, reps, mix_seed(seed, kStreamCurve, gi)));
  }
  // "Better" is "greater" after negating a metric to minimise. The reverse pair is the
  // complement (ties count half both ways), so each unordered pair is bootstrapped once.
  const double sign = minimize ? -1.0 : 1.0;
  for (size_t x = 0; x < c.groups.size(); ++x) {
    for (size_t y = x + 1; y < c.groups.size(); ++y) {
      TaskScores sx{c.groups[x].finals}, sy{c.groups[y].finals};
      for (auto& v : sx[0]) v *= sign;
      for (auto& v : sy[0]) v *= sign;
      Improvement xy{x, y, probability_of_improvement(sx, sy),
                     probability_of_improvement_ci(sx, sy, reps, 0.95,
                                                   mix_seed(seed, kStreamImprovement, x, y))};
      Improvement yx{y, x, 1.0 - xy.p, {1.0 - xy.ci.hi, 1.0 - xy.ci.lo}};
      c.improvements.push_back(xy);
      c.improvements.push_back(yx);
    }
  }
  std::sort(c.improvements.begin(), c.improvements.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.x, a.y) < std::make_pair(b.x, b.y);
  });
  return c;
}

std::string markdown_report(const Comparison& c) {
  size_t runs = 0;
  for (const auto& g : c.groups) runs += g.finals.size();
  std::ostringstream md;
  md << "## " << c.metric << " (" << (c.minimize ? "lower" : "higher") << " is better): " << runs
     << (runs == 1 ? " run" : " runs") << " in " << c.groups.size()
     << (c.groups.size() == 1 ? " group" : " groups") << "\n\n";
  md << "| group | runs | final step | final (mean) | best (mean) | IQM of final | 95% CI |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const auto& g : c.groups) {
    const std::string step = g.final_step_min == g.final_step_max
                                 ? str(g.final_step_min)
                                 : str(g.final_step_min, "-", g.final_step_max);
    md << "| " << md_cell(g.label) << " | " << g.finals.size() << " | " << step << " | "
       << format_number(g.final_mean, 5) << " | " << format_number(g.best_mean, 5) << " | "
       << format_number(g.iqm, 5) << " | " << interval(g.iqm_ci, 5) << " |\n";
  }
  md << "\nIQM: mean of the middle half of the seeds' final values; CIs from " << c.reps
     << " bootstrap resamples of the seeds.\n";
  if (!c.improvements.empty()) {
    md << "\n### Probability of improvement\n\n"
       << "P(X better than Y): the chance that a seed of X ends "
       << (c.minimize ? "below" : "above") << " a seed of Y, ties counting half.\n\n";
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
  table << "group,runs,final_step,final_mean,best_mean,iqm,iqm_ci_lo,iqm_ci_hi\n";
  for (const auto& g : c.groups)
    table << csv_field(g.label) << "," << g.finals.size() << "," << g.final_step_max << ","
          << csv_number(g.final_mean) << "," << csv_number(g.best_mean) << "," << csv_number(g.iqm)
          << "," << csv_number(g.iqm_ci.lo) << "," << csv_number(g.iqm_ci.hi) << "\n";
  write_text(dir / "compare.csv", table.str());

  std::ostringstream curves;
  curves << "group,step,n,mean,iqm,ci_lo,ci_hi\n";
  for (size_t g = 0; g < c.groups.size(); ++g)
    for (const auto& p : c.curves[g])
      curves << csv_field(c.groups[g].label) << "," << p.step << "," << p.n << ","
             << csv_number(p.mean) << "," << csv_number(p.iqm) << "," << csv_number(p.ci.lo) << ","
             << csv_number(p.ci.hi) << "\n";
  write_text(dir / "curves.csv", curves.str());
}

int run_compare(const CompareOptions& o) {
  if (o.paths.empty()) throw InputError("compare: expected at least one run or sweep directory");
  if (o.reps < 1) throw InputError(str("--reps ", o.reps, ": expected an integer >= 1"));
  const std::string metric = o.metric.empty() ? default_metric(o.paths, o.task_metrics) : o.metric;
  const bool minimize = minimize_metric(metric, o.mode);
  const auto groups = load_run_groups(o.paths, metric);

  // Mixing splits (eval in some runs, train in others) would compare unlike numbers: say so.
  std::set<std::string> splits;
  for (const auto& g : groups)
    for (const auto& run : g.runs) splits.insert(run.split);
  if (splits != std::set<std::string>{"eval"}) {
    std::string names;
    for (const auto& s : splits) names += (names.empty() ? "\"" : ", \"") + s + "\"";
    warn(str(metric, " is not in eval lines; read from split ", names));
  }
  const Comparison c = compare_groups(groups, metric, minimize, o.reps, o.seed);
  for (const auto& g : c.groups)
    if (g.final_step_min != g.final_step_max)
      warn(str(g.label, ": runs end at different steps (", g.final_step_min, " to ",
               g.final_step_max, "); final values mix them"));
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
  std::cerr << "stoch compare: wrote " << (fs::path(out_dir) / "compare.md").string()
            << ", compare.csv and curves.csv\n";
  plot_curves(o, metric, out_dir);
  return kExitOk;
}

}  // namespace stoch::analysis
