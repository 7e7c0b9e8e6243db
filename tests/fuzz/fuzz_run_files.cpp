// The files of a run directory that later commands read back: metrics.jsonl (`stoch compare`'s
// curves, and the truncation a resume does), config.yaml (compare's grouping) and
// rollbacks.json, and compare's --normalize file. Parts: metrics.jsonl, config.yaml,
// rollbacks.json, the normalisation. Two runs are made from them, differing in one config key,
// and compared as `stoch compare` would: as two groups, and as one group on two tasks.
#include <filesystem>
#include <optional>

#include "analysis/compare.h"
#include "analysis/run_groups.h"
#include "core/errors.h"
#include "core/metrics.h"
#include "fuzz_target.h"
#include "train/rollbacks.h"

namespace stoch::fuzz {

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 4);
  const std::string sweep = scratch_dir();
  for (const char* run : {"a", "b"}) {
    const std::string dir = sweep + "/" + run;
    std::filesystem::create_directories(dir);
    write_file(dir + "/metrics.jsonl", parts[0]);
    write_file(dir + "/config.yaml",
               parts[1] + (std::string(run) == "b" ? "\nfuzz_group: 2\n" : ""));
    write_file(dir + "/rollbacks.json", parts[2]);
  }
  write_file(sweep + "/normalize.yaml", parts[3]);
  std::optional<analysis::Normalization> norm;
  try {
    norm = analysis::read_normalization(sweep + "/normalize.yaml");
  } catch (const InputError&) {
  }
  (void)train::Rollbacks::read(sweep + "/a");
  truncate_metrics_after(sweep + "/b/metrics.jsonl", 3);
  for (const char* metric : {"eval/loss", "train/loss"}) {
    for (const auto& task_keys :
         {std::vector<std::string>{}, std::vector<std::string>{"fuzz_group"}}) {
      analysis::RunSet set;
      try {
        set = analysis::load_run_set({sweep}, metric, task_keys);
      } catch (const InputError&) {
        continue;  // this metric is absent or malformed; the other may not be
      }
      analysis::CompareSettings settings;
      settings.metric = metric;
      settings.reps = 50;
      settings.seed = 1;
      for (const bool normalised : {false, true}) {
        if (normalised && !norm) continue;
        settings.normalization = normalised ? &*norm : nullptr;
        try {
          (void)analysis::markdown_report(analysis::compare_groups(set, settings));
        } catch (const InputError&) {
          // the normalisation lacks a task: refused as the command refuses it
        }
      }
    }
  }
}

std::vector<std::string> fuzz_seeds() {
  const std::string metrics =
      "{\"step\": 1, \"split\": \"train\", \"train/loss\": 2.5, \"lr\": 0.001}\n"
      "{\"step\": 2, \"split\": \"train\", \"train/loss\": 2.25}\n"
      "{\"step\": 2, \"split\": \"eval\", \"eval/loss\": 2.4, \"eval/bpb\": 1.2}\n"
      "{\"step\": 4, \"split\": \"train\", \"train/loss\": 1.75}\n"
      "{\"step\": 4, \"split\": \"eval\", \"eval/loss\": 2.0}\n"
      "{\"step\": 5, \"split\": \"tr";
  const std::string config = "task: lm\nseed: 3\nmodel:\n  d_model: 16\ntrain:\n  steps: 4\n";
  return {
      join_parts({metrics, config, "{\"count\": 1, \"lr_scale\": 0.5, \"events\": []}",
                  "(unset): {random: 0, reference: 10}\n2: {random: 1, reference: 3}\n"}),
      join_parts({"{\"step\": 0, \"eval/loss\": null}\n{\"step\": 1, \"eval/loss\": 1e308}\n",
                  "run:\n  name: x\n", "", "(unset): {min: 0, max: 1}\n2: {min: 1, max: 0}\n"}),
  };
}

}  // namespace stoch::fuzz
