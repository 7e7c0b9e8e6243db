#include "analysis/run_groups.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"
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

std::string run_name(const config::Node& config, const fs::path& dir) {
  if (const auto* run = config.find("run"))
    if (const auto* name = run->find("name"))
      if (name->kind == config::Node::Kind::kScalar && !name->scalar.empty()) return name->scalar;
  return dir.filename().string();
}

}  // namespace

const std::vector<std::string>& seed_only_keys() {
  static const std::vector<std::string> keys = {"run.seed", "run.name",        "run.threads",
                                                "log",      "train.keep_last", "train.keep_every"};
  return keys;
}

std::vector<std::string> find_run_dirs(const std::vector<std::string>& paths) {
  std::set<std::string> found;
  for (const auto& path : paths) {
    const fs::path p(path);
    if (!fs::exists(p)) throw InputError(str(path, ": no such file or directory"));
    const size_t before = found.size();
    if (is_run_dir(p)) {
      found.insert(fs::weakly_canonical(p).string());
    } else if (fs::is_directory(p)) {
      for (const auto& child : subdirs(p)) {
        if (is_run_dir(child)) {
          found.insert(fs::weakly_canonical(child).string());
          continue;  // a run's own folders (checkpoints/) are not runs
        }
        for (const auto& grandchild : subdirs(child))
          if (is_run_dir(grandchild)) found.insert(fs::weakly_canonical(grandchild).string());
      }
    }
    if (found.size() == before)
      throw InputError(str(path,
                           ": no runs found (a run directory holds config.yaml; a sweep "
                           "directory holds run directories one or two levels down)"));
  }
  return {found.begin(), found.end()};
}

Curve read_metric_curve(const std::string& run_dir, const std::string& metric,
                        const std::string& split, std::string* split_used) {
  const std::string file = (fs::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(file);
  if (!in) throw InputError(str(file, ": not found"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string::npos)
    lines.pop_back();

  // Curves per split in order of first appearance, so the fallback is deterministic.
  std::vector<std::pair<std::string, Curve>> by_split;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = str(file, ":", i + 1);
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (i + 1 == lines.size()) break;  // a run killed mid-write leaves a torn last line
      throw InputError(str(where, ": expected a JSON object"));
    }
    const auto value = j.find(metric);
    if (value == j.end() || value->is_null()) continue;
    if (!value->is_number()) throw InputError(str(where, ": ", metric, ": expected a number"));
    const auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer())
      throw InputError(str(where, ": expected an integer \"step\""));
    const auto s = j.find("split");
    const std::string line_split = s != j.end() && s->is_string() ? s->get<std::string>() : "";
    auto it = std::find_if(by_split.begin(), by_split.end(),
                           [&](const auto& e) { return e.first == line_split; });
    if (it == by_split.end()) it = by_split.insert(by_split.end(), {line_split, Curve{}});
    it->second[step->get<int64_t>()] = value->get<double>();  // a re-logged step: last one wins
  }
  if (by_split.empty()) throw InputError(str(file, ": no values of metric ", metric));
  auto chosen = std::find_if(by_split.begin(), by_split.end(),
                             [&](const auto& e) { return e.first == split; });
  if (chosen == by_split.end()) chosen = by_split.begin();
  if (split_used) *split_used = chosen->first;
  return chosen->second;
}

std::map<std::string, std::string> config_fingerprint(const config::Node& config) {
  std::map<std::string, std::string> leaves = config::leaves(config);
  for (auto it = leaves.begin(); it != leaves.end();) {
    const bool ignored = std::any_of(seed_only_keys().begin(), seed_only_keys().end(),
                                     [&](const std::string& k) { return under(it->first, k); });
    it = ignored ? leaves.erase(it) : std::next(it);
  }
  return leaves;
}

std::vector<RunGroup> group_runs(std::vector<Run> runs) {
  std::vector<RunGroup> groups;
  std::vector<std::map<std::string, std::string>> prints;
  for (auto& run : runs) {
    auto print = config_fingerprint(run.config);
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

std::vector<RunGroup> load_run_groups(const std::vector<std::string>& paths,
                                      const std::string& metric, const std::string& split) {
  std::vector<Run> runs;
  for (const auto& dir : find_run_dirs(paths)) {
    Run run;
    run.dir = dir;
    run.config = config::load_file((fs::path(dir) / "config.yaml").string());
    run.name = run_name(run.config, dir);
    run.curve = read_metric_curve(dir, metric, split, &run.split);
    runs.push_back(std::move(run));
  }
  return group_runs(std::move(runs));
}

}  // namespace stoch::analysis
