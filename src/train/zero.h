// Sharded AdamW, as ZeRO stages 1 and 2 (Rajbhandari et al. 2020) and FSDP's flat parameters do
// it: the trained parameters are laid end to end in one flat index space, padded to a multiple
// of the world size W, and rank r owns elements [r * shard, (r + 1) * shard). Each rank keeps
// AdamW's moments for its own elements only (1/W of the state), updates them, and all-gathers
// the parameters so every rank holds the whole model again. With `shard_gradients` the step's
// gradients are reduce-scattered (each rank receives only its summed shard) instead of
// all-reduced, and clipping takes the global norm over the shards.
// AdamW is elementwise, so a sharded step computes exactly what the unsharded one does; only the
// order of the gradient sum over ranks may differ.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/torch/checkpoint.h"
#include "optim/adamw.h"

namespace stoch::train {

class Distributed;

struct FlatLayout {
  std::vector<std::string> names;
  std::vector<int64_t> numels;
  std::vector<int64_t> offsets;  // of each parameter in the flat index space
  int64_t numel = 0;             // all parameters
  int64_t world = 1;
  int64_t shard = 0;  // elements per rank: numel rounded up to a multiple of world, over world

  FlatLayout() = default;
  FlatLayout(std::vector<std::string> names, std::vector<int64_t> numels, int64_t world);
  nlohmann::json to_json() const;
  // Throws InputError naming `origin` when `j` is not a layout.
  static FlatLayout from_json(const nlohmann::json& j, const std::string& origin);
};

class ShardedAdamW {
 public:
  ShardedAdamW(Distributed& dist, const std::vector<std::pair<std::string, torch::Tensor>>& params,
               optim::OptimConfig cfg, bool shard_gradients);
  ~ShardedAdamW();

  void zero_grad();
  // After the step's backward passes. Gradient sharding: reduce-scatters the local gradients
  // into this rank's shard. Otherwise they were all-reduced already (train/gradient_buckets.h).
  void reduce_gradients();
  // Scales the gradients so that their global L2 norm is at most max_norm; returns the norm
  // before clipping (the same on every rank).
  torch::Tensor clip(double max_norm);
  // Updates this rank's elements, then all-gathers the parameters.
  void step(double lr);
  // Gradient sharding: each parameter's sum of squared gradient elements (after clipping), over
  // every rank's share; a collective, so every rank calls it. Empty otherwise: the gradients
  // are in the parameters, whole on every rank.
  std::map<std::string, double> grad_squares() const;

  // This rank's share: "exp_avg" and "exp_avg_sq" (`shard` elements each) and "<param>.step".
  TensorList shard_state() const;
  // Takes this rank's share of a whole state, named as AdamW::state() names it.
  void load_state(const TensorList& whole);
  // Bytes of optimiser state this rank holds (moments and step counts).
  int64_t state_bytes() const;
  const FlatLayout& layout() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Bytes of AdamW state for `params` unsharded: two moments per element and one count each.
int64_t unsharded_state_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& params);

// A checkpoint's optimiser state named as AdamW::state() names it, whatever it was written as:
// one "optimizer" file, or a sharded run's "optimizer.shard-R" files with the layout in
// state.json (reassembled here, so that any world size can take its share). `shapes` gives each
// trained parameter's shape. Throws InputError naming the file when a shard is missing or does
// not fit the layout.
TensorList whole_optimizer_state(const Checkpoint& c,
                                 const std::map<std::string, std::vector<int64_t>>& shapes);

std::string shard_file_stem(int64_t rank);

}  // namespace stoch::train
