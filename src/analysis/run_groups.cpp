#include "analysis/run_groups.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/errors.h"
#include "core/run_lock.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch::analysis {
namespace {

bool is_run_dir(const fs::path& p) {
  return fs::is_regular_file(p / "config.yaml");
}

std::vector<fs::path> subdirs(const fs::path& p) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p, ec))
    if (e.is_directory(ec)) out.push_back(e.path());
  return out;
}

bool under(const std::string& key, const std::string& prefix) {
  return key == prefix || (key.size() > prefix.size() &&
                           key.compare(0, prefix.size(), prefix) == 0 && key[prefix.size()] == '.');
}

// Removes `keys` and their subtrees.
void drop_keys(std::map<std::string, std::string>& leaves, const std::vector<std::string>& keys) {
  for (auto it = leaves.begin(); it != leaves.end();) {
    const bool drop = std::any_of(keys.begin(), keys.end(),
                                  [&](const std::string& k) { return under(it->first, k); });
    it = drop ? leaves.erase(it) : std::next(it);
  }
}

std::string task_name(const config::Node& config, const std::vector<std::string>& task_keys) {
  const auto leaves = config::leaves(config);
  std::vector<std::string> values;
  bool any = false;
  for (const auto& key : task_keys) {
    const auto it = leaves.find(key);
    any = any || it != leaves.end();
    values.push_back(it == leaves.end() ? "(unset)" : it->second);
  }
  return any ? join(values, ", ") : "";
}

// Keys equal within every task and different between two tasks. A key a run lacks counts as
// the value "(unset)".
std::vector<std::string> keys_following_task(const std::vector<Run>& runs,
                                             const std::vector<std::string>& task_keys,
                                             const std::vector<std::string>& same_setup) {
  std::vector<std::map<std::string, std::string>> prints;
  std::set<std::string> keys, tasks;
  for (const auto& run : runs) {
    tasks.insert(run.task);
    prints.push_back(config_fingerprint(run.config, same_setup));
    drop_keys(prints.back(), task_keys);
    for (const auto& [k, v] : prints.back()) keys.insert(k);
  }
  std::vector<std::string> out;
  if (tasks.size() < 2) return out;
  for (const auto& key : keys) {
    std::map<std::string, std::set<std::string>> by_task;
    for (size_t r = 0; r < runs.size(); ++r) {
      const auto it = prints[r].find(key);
      by_task[runs[r].task].insert(it == prints[r].end() ? "(unset)" : it->second);
    }
    std::set<std::string> across;
    bool constant_within = true;
    for (const auto& [task, values] : by_task) {
      constant_within = constant_within && values.size() == 1;
      across.insert(*values.begin());
    }
    if (constant_within && across.size() > 1) out.push_back(key);
  }
  return out;
}

// train.steps as written, -1 when it is not a whole number (compare does not validate configs).
int64_t parse_steps(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  return text.empty() || *end != '\0' || errno != 0 || v < 0 ? -1 : static_cast<int64_t>(v);
}

std::string run_name(const config::Node& config, const fs::path& dir) {
  if (const auto* run = config.find("run"))
    if (const auto* name = run->find("name"))
      if (name->kind == config::Node::Kind::kScalar && !name->scalar.empty()) return name->scalar;
  return dir.filename().string();
}

}  // namespace

std::vector<std::string> find_run_dirs(const std::vector<std::string>& paths) {
  std::set<std::string> found;
  for (const auto& path : paths) {
    const fs::path p(path);
    if (!fs::exists(p)) throw InputError(str(path, ": no such file or directory"));
    // Counted per path, not by what is new: a path whose runs an earlier one also named still
    // has runs.
    size_t matched = 0;
    const auto take = [&](const fs::path& run) {
      found.insert(fs::weakly_canonical(run).string());
      ++matched;
    };
    if (is_run_dir(p)) {
      take(p);
    } else if (fs::is_directory(p)) {
      for (const auto& child : subdirs(p)) {
        if (is_run_dir(child)) {
          take(child);
          continue;  // a run's own folders (checkpoints/) are not runs
        }
        for (const auto& grandchild : subdirs(child))
          if (is_run_dir(grandchild)) take(grandchild);
      }
    }
    if (matched == 0)
      throw InputError(str(path,
                           ": no runs found (a run directory holds config.yaml; a sweep "
                           "directory holds run directories one or two levels down)"));
  }
  return {found.begin(), found.end()};
}

Curve read_metric_curve(const std::string& run_dir, const std::string& metric,
                        const std::string& split, std::string* split_used,
                        int64_t* last_null_step) {
  const std::string file = (fs::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(file);
  if (!in) throw InputError(str(file, ": not found"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string::npos)
    lines.pop_back();

  // Curves per split in order of first appearance, so the fallback is deterministic.
  std::vector<std::pair<std::string, Curve>> by_split;
  std::map<std::string, int64_t> null_steps;  // per split, the last step logging a null
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = str(file, ":", i + 1);
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (i + 1 == lines.size()) break;  // a run killed mid-write leaves a torn last line
      throw InputError(str(where, ": expected a JSON object"));
    }
    const auto value = j.find(metric);
    if (value == j.end()) continue;
    if (!value->is_null() && !value->is_number())
      throw InputError(str(where, ": ", metric, ": expected a number"));
    const auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer())
      throw InputError(str(where, ": expected an integer \"step\""));
    const auto s = j.find("split");
    const std::string line_split = s != j.end() && s->is_string() ? s->get<std::string>() : "";
    if (value->is_null()) {
      auto& last = null_steps.emplace(line_split, step->get<int64_t>()).first->second;
      last = std::max(last, step->get<int64_t>());
      continue;
    }
    auto it = std::find_if(by_split.begin(), by_split.end(),
                           [&](const auto& e) { return e.first == line_split; });
    if (it == by_split.end()) it = by_split.insert(by_split.end(), {line_split, Curve{}});
    it->second[step->get<int64_t>()] = value->get<double>();  // a re-logged step: last one wins
  }
  if (by_split.empty())
    throw InputError(null_steps.empty()
                         ? str(file, ": no values of metric ", metric)
                         : str(file, ": ", metric, " is never finite (null on every line)"));
  auto chosen = std::find_if(by_split.begin(), by_split.end(),
                             [&](const auto& e) { return e.first == split; });
  if (chosen == by_split.end()) chosen = by_split.begin();
  if (split_used) *split_used = chosen->first;
  if (last_null_step) {
    const auto n = null_steps.find(chosen->first);
    *last_null_step = n == null_steps.end() ? -1 : n->second;
  }
  return chosen->second;
}

std::map<std::string, std::string> config_fingerprint(const config::Node& config,
                                                      const std::vector<std::string>& same_setup) {
  std::map<std::string, std::string> leaves = config::leaves(config);
  drop_keys(leaves, {"run.seed"});
  drop_keys(leaves, same_setup);
  return leaves;
}

std::vector<RunGroup> group_runs(std::vector<Run> runs, const std::vector<std::string>& ignored) {
  std::vector<RunGroup> groups;
  std::vector<std::map<std::string, std::string>> prints;
  for (auto& run : runs) {
    auto print = config_fingerprint(run.config);
    drop_keys(print, ignored);
    const auto it = std::find(prints.begin(), prints.end(), print);
    if (it == prints.end()) {
      prints.push_back(std::move(print));
      groups.emplace_back().runs.push_back(std::move(run));
    } else {
      groups[it - prints.begin()].runs.push_back(std::move(run));
    }
  }
  for (auto& g : groups)
    std::sort(g.runs.begin(), g.runs.end(),
              [](const Run& a, const Run& b) { return a.dir < b.dir; });

  if (groups.size() == 1) {
    groups[0].label = groups[0].runs[0].name;
    return groups;
  }
  // A key labels the groups when some group's value differs from another's (or is absent).
  std::set<std::string> keys;
  for (const auto& p : prints)
    for (const auto& [k, v] : p) keys.insert(k);
  for (const auto& key : keys) {
    auto value_of = [&](const std::map<std::string, std::string>& p) {
      const auto it = p.find(key);
      return it == p.end() ? std::string("(unset)") : it->second;
    };
    const std::string first = value_of(prints[0]);
    const bool differs = std::any_of(prints.begin(), prints.end(),
                                     [&](const auto& p) { return value_of(p) != first; });
    if (!differs) continue;
    for (size_t g = 0; g < groups.size(); ++g)
      groups[g].differing.push_back(key + "=" + value_of(prints[g]));
  }
  for (auto& g : groups) {
    for (const auto& d : g.differing) g.label += (g.label.empty() ? "" : ", ") + d;
  }
  return groups;
}

RunSet make_run_set(std::vector<Run> runs, const std::vector<std::string>& task_keys,
                    const std::vector<std::string>& same_setup) {
  RunSet set;
  set.task_keys = task_keys;
  std::set<std::string> tasks;
  for (auto& run : runs) {
    run.task = task_name(run.config, task_keys);
    tasks.insert(run.task);
  }
  set.tasks.assign(tasks.begin(), tasks.end());
  for (const auto& key : task_keys)
    if (std::none_of(runs.begin(), runs.end(), [&](const Run& run) {
          const auto leaves = config::leaves(run.config);
          return leaves.count(key) > 0;
        }))
      set.absent_task_keys.push_back(key);
  set.following_keys = keys_following_task(runs, task_keys, same_setup);
  std::vector<std::string> ignored = task_keys;
  ignored.insert(ignored.end(), set.following_keys.begin(), set.following_keys.end());
  ignored.insert(ignored.end(), same_setup.begin(), same_setup.end());
  set.groups = group_runs(std::move(runs), ignored);
  if (set.groups.size() == 1 && set.tasks.size() > 1) set.groups[0].label = "all runs";
  // One setup, task and seed twice (a sweep's value written two ways, a run copied) is one
  // sample: counted twice it would narrow every interval. A config.yaml without run.seed ran
  // with the default seed.
  for (const auto& g : set.groups) {
    std::map<std::pair<std::string, std::string>, const Run*> seen;  // (task, seed) -> run
    for (const auto& run : g.runs) {
      const auto leaves = config::leaves(run.config);
      const auto seed = leaves.find("run.seed");
      const std::string s = seed == leaves.end() ? "(default)" : seed->second;
      const auto [first, fresh] = seen.emplace(std::make_pair(run.task, s), &run);
      if (fresh) continue;
      std::vector<std::string> differ;
      const auto other = config::leaves(first->second->config);
      for (const auto& [k, v] : leaves)
        if (k != "run.name" && (!other.count(k) || other.at(k) != v)) differ.push_back(k);
      for (const auto& [k, v] : other)
        if (k != "run.name" && !leaves.count(k)) differ.push_back(k);
      throw InputError(
          str(first->second->dir, " and ", run.dir, " are one setup with one run.seed (", s,
              "): the same run twice, one sample, not two (",
              differ.empty()
                  ? std::string("their configs agree")
                  : "they differ only in " + join(differ, ", ") + ", which change at most rounding",
              "); compare only one of them"));
    }
  }
  for (const auto& g : set.groups) {
    std::set<std::string> have;
    for (const auto& run : g.runs) have.insert(run.task);
    for (const auto& task : set.tasks)
      if (!have.count(task))
        throw InputError(str("group \"", g.label, "\" has no run on task \"", task,
                             "\" (task keys: ", join(task_keys, ", "),
                             "); every group needs every task: compare fewer paths, or set "
                             "--task-key"));
  }
  return set;
}

RunSet load_run_set(const std::vector<std::string>& paths, const std::string& metric,
                    const std::vector<std::string>& task_keys, const std::string& split,
                    const std::vector<std::string>& same_setup) {
  std::vector<Run> runs;
  std::vector<std::string> not_yet;
  for (const auto& dir : find_run_dirs(paths)) {
    Run run;
    run.dir = dir;
    run.config = config::load_file((fs::path(dir) / "config.yaml").string());
    run.name = run_name(run.config, dir);
    run.being_written = run_lock_owner(dir).has_value();
    if (const auto* train = run.config.find("train"))
      if (const auto* steps = train->find("steps"))
        if (steps->kind == config::Node::Kind::kScalar) run.steps = parse_steps(steps->scalar);
    try {
      run.curve = read_metric_curve(dir, metric, split, &run.split, &run.last_null_step);
    } catch (const InputError&) {
      // A run that has only just started has logged nothing yet: leave it out, and say so.
      if (!run.being_written) throw;
      not_yet.push_back(fs::path(dir).filename().string());
      continue;
    }
    runs.push_back(std::move(run));
  }
  if (runs.empty())
    throw InputError(str(join(paths, ", "), ": no run has logged ", metric, " yet (",
                         not_yet.size(), not_yet.size() == 1 ? " run" : " runs",
                         " still being written)"));
  RunSet set = make_run_set(std::move(runs), task_keys, same_setup);
  set.not_yet = std::move(not_yet);
  return set;
}

std::vector<RunGroup> load_run_groups(const std::vector<std::string>& paths,
                                      const std::string& metric, const std::string& split,
                                      const std::vector<std::string>& same_setup) {
  return load_run_set(paths, metric, {}, split, same_setup).groups;
}

}  // namespace stoch::analysis
