// A checkpoint folder's manifest.json and state.json. Parts: manifest, state. Beyond "no crash":
// once state.json passes its check, the training loop's own reads of it cannot throw.
#include <cstdint>

#include "core/checkpoint_manifest.h"
#include "fuzz_target.h"

namespace stoch::fuzz {

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 2);
  const CheckpointManifest m =
      parse_checkpoint_manifest(parts[0], "manifest.json", /*newest_version=*/1, /*step=*/100);
  (void)m;
  const nlohmann::json state = parse_checkpoint_state(parts[1], "state.json", /*step=*/100);
  // The loop's reads (train/loop_state.cpp, train/rank_state.cpp, rl/dqn/dqn_agent.cpp): a
  // type error here escapes as a finding.
  for (const char* key :
       {"step", "micro_batches", "tokens_seen", "interval_steps", "interval_skipped", "env_steps",
        "world_size", "grad_accum", "micro_batches_per_step"})
    (void)state.value(key, int64_t{0});
  for (const char* key : {"elapsed_s", "interval_train_s", "interval_loss"}) {
    const auto it = state.find(key);
    if (it != state.end() && !it->is_null()) (void)it->get<double>();
  }
}

std::vector<std::string> fuzz_seeds() {
  CheckpointManifest m{1, 100, "2.11.0", {}};
  m.files = {{"model.safetensors", 1234, "0badf00d"},
             {"optimizer.safetensors", 2468, "12345678"},
             {"state.json", 300, "abcdef01"}};
  const nlohmann::json state = {
      {"step", 100},
      {"micro_batches", 400},
      {"micro_batches_per_step", 4},
      {"grad_accum", 2},
      {"tokens_seen", 51200},
      {"elapsed_s", 12.5},
      {"world_size", 2},
      {"interval_steps", 3},
      {"interval_train_s", 0.3},
      {"interval_loss", nullptr},
      {"interval_skipped", 0},
      {"task", "lm"},
      {"env_steps", 800},
      {"update_guard", {{"losses", {1.0, 2.0}}, {"grad_norms", {0.5, 0.4}}}}};
  return {
      join_parts({manifest_json(m).dump(2), state.dump(2)}),
      join_parts({manifest_json(CheckpointManifest{1, 100, "", {}}).dump(), "{\"step\": 100}"})};
}

}  // namespace stoch::fuzz
