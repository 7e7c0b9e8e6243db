// Reading back what a run directory holds, for the commands that use a finished or
// interrupted run (resume, eval, sample), and writing its config.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config_tree.h"
#include "core/torch/checkpoint.h"
#include "train/experiment.h"

namespace stoch::cli {

// The run's resolved config.yaml with `sets` applied; InputError when run_dir holds none, or
// one cut short (check_run_config_whole).
train::ExperimentConfig read_run_config(const std::string& run_dir,
                                        const std::vector<std::string>& sets = {});

// A run's config.yaml is read with defaults for the keys it lacks (older versions knew fewer),
// so a file cut short would resume with defaults. Throws InputError naming `path` when it is
// empty, or says it ends with a last line it lacks (every config.yaml written since 2026-12-07).
void check_run_config_whole(const std::string& path);

// The checkpoint of `step`, or the newest complete one when step < 0; InputError naming the
// steps the run has when there is no such checkpoint.
Checkpoint load_run_checkpoint(const std::string& run_dir, int64_t step);

// For `train --run-dir DIR`, which starts afresh there (removing the metrics, TensorBoard files
// and rollback record of a run that died before its first checkpoint): DIR must not exist, be
// empty, or hold only what stoch writes in a run folder, with a config.yaml that stoch wrote.
// InputError naming the first thing that is not, so no folder of the user's is written over.
void check_fresh_run_dir(const std::string& dir);

// Every resolved key of `cfg` with its value, as config.yaml writes it, but the keys in `skip`.
std::map<std::string, std::string> resolved_leaves(train::ExperimentConfig& cfg,
                                                   const std::set<std::string>& skip = {});

// The first key, in sorted order, whose resolved value differs between two configs, with each
// side's value ("(absent)" where a side lacks the key); nothing when they agree. Keys in `skip`
// are not compared.
using ConfigDifference = config::LeafDifference;
std::optional<ConfigDifference> first_config_difference(train::ExperimentConfig& a,
                                                        train::ExperimentConfig& b,
                                                        const std::set<std::string>& skip = {});

// `s` as one POSIX shell word, for the commands messages suggest: as it is when it holds only
// characters no shell treats specially, else in single quotes ('it'\''s').
std::string shell_word(const std::string& s);

// Writes cfg as the run's config.yaml (every key, with docs), atomically.
void write_run_config(train::ExperimentConfig& cfg, const std::string& run_dir);

}  // namespace stoch::cli
