#include "cli/run_dir.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/config_tree.h"
#include "core/errors.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch::cli {
namespace {

// The first line promises the last, so a file cut short can be told from one written before
// the last line existed.
const char* const kHeader =
    "# Resolved by stoch: every key with its value; the run's identity; whole when it ends with "
    "'# end'.\n";
const char* const kLastLine = "# end\n";
// How the first line of every version's config.yaml begins (the last line came later).
const char* const kHeaderStart = "# Resolved by stoch";

}  // namespace

void check_run_config_whole(const std::string& path) {
  const auto text = read_whole_file(path);
  if (!text) throw InputError(stoch::str(path, ": cannot read"));
  if (text->find_first_not_of(" \t\r\n") == std::string::npos)
    throw InputError(stoch::str(path, ": empty; a run's config.yaml holds every key"));
  const std::string last = kLastLine;
  if (text->rfind(kHeader, 0) == 0 &&
      (text->size() < last.size() || text->compare(text->size() - last.size(), last.size(), last)))
    throw InputError(stoch::str(path,
                                ": cut short (it lacks its last line, '# end'); restore it "
                                "from a copy: read with defaults, it would change the run"));
}

train::ExperimentConfig read_run_config(const std::string& run_dir,
                                        const std::vector<std::string>& sets) {
  const std::string path = run_dir + "/config.yaml";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(stoch::str(path, ": not found (is ", run_dir, " a run directory?)",
                                ec ? " (" + ec.message() + ")" : ""));
  check_run_config_whole(path);
  return train::parse_experiment(train::load_config(path, sets));
}

Checkpoint load_run_checkpoint(const std::string& run_dir, int64_t step) {
  CheckpointStore store(run_dir);
  if (step < 0) {
    if (auto latest = store.load_latest()) return std::move(*latest);
    // Say why there is none yet: a run still before its first checkpoint, or one that died there.
    const auto owner = run_lock_owner(run_dir);
    throw InputError(stoch::str(
        run_dir, ": no complete checkpoint to load",
        owner ? " yet (a run is writing it: " + *owner + "; its first comes at train.ckpt_every)"
              : " (a run that stopped before its first; `stoch resume " + shell_word(run_dir) +
                    "` trains it from step 0)"));
  }
  const auto steps = store.steps();
  if (std::find(steps.begin(), steps.end(), step) == steps.end())
    throw InputError(stoch::str(
        "--checkpoint ", step, ": ", run_dir, " has no checkpoint of that step (",
        steps.empty() ? std::string("it has none") : "it has " + join(steps, ", "), ")"));
  return store.load(step);
}

std::map<std::string, std::string> resolved_leaves(train::ExperimentConfig& cfg,
                                                   const std::set<std::string>& skip) {
  auto leaves = config::leaves(config::parse_text(train::to_yaml(cfg, false), "a config"));
  for (const auto& key : skip) leaves.erase(key);
  return leaves;
}

std::optional<ConfigDifference> first_config_difference(train::ExperimentConfig& a,
                                                        train::ExperimentConfig& b,
                                                        const std::set<std::string>& skip) {
  return config::first_difference(resolved_leaves(a, skip), resolved_leaves(b, skip));
}

std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("/._-+=,:@%", c) != nullptr;
  });
  if (plain) return s;
  std::string quoted = "'";
  for (const char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void check_fresh_run_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) throw InputError(stoch::str("--run-dir ", dir, ": not a folder"));
  static const std::set<std::string> kRunFiles = {"config.yaml",    "log.txt",  "metrics.jsonl",
                                                  "rollbacks.json", "tb",       "checkpoints",
                                                  ".lock",          ".torchrun"};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // A file stoch was replacing when a run died there ("config.yaml.tmp.PID") is its own too.
    const auto tmp = name.find(".tmp.");
    if (!kRunFiles.count(name) &&
        (tmp == std::string::npos || !kRunFiles.count(name.substr(0, tmp))))
      throw InputError(stoch::str("--run-dir ", dir, ": holds ", name,
                                  ", which is not part of a stoch run; train into a new or empty "
                                  "folder"));
  }
  if (ec) throw InputError(stoch::str("--run-dir ", dir, ": cannot list (", ec.message(), ")"));
  const std::string config = dir + "/config.yaml";
  if (fs::exists(config, ec)) {
    const auto text = read_whole_file(config);
    if (!text || text->rfind(kHeaderStart, 0) != 0)
      throw InputError(stoch::str(config,
                                  ": not a run's config written by stoch (its first line is "
                                  "stoch's header), and a run would replace it; train into a new "
                                  "or empty folder"));
  }
}

void write_run_config(train::ExperimentConfig& cfg, const std::string& run_dir) {
  replace_file_durably(run_dir + "/config.yaml", kHeader + train::to_yaml(cfg, true) + kLastLine);
}

}  // namespace stoch::cli
