// What of a checkpoint differs between the ranks of a data-parallel run: each rank's RNG
// streams (their dropout masks differ), and the world size, which a resumed run must match.
// With one process the names and contents are those of a single-process run.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/torch/safetensors.h"

namespace stoch::train {

class Distributed;

// The default generators' states ("torch_cpu", and "torch_cuda" when training there); with
// `dist`, every rank's, gathered (a collective), rank r > 0 under "<name>.rank<r>".
TensorList rng_tensors(const c10::Device& device, Distributed* dist);

// Restores this rank's generators from what rng_tensors saved.
void restore_rng(const TensorList& saved, const c10::Device& device, int64_t rank);

// Throws InputError when the checkpoint in `dir` with training state `state` was written by
// another world size: a step's micro-batches, the RNG streams and the order of the gradient sum
// all depend on it.
void check_world_size(const std::string& dir, const nlohmann::json& state, int64_t world_size);

// The same check on the newest checkpoint of `run_dir`, reading its state.json only (a damaged
// one is left for the full load to report), so a launcher can refuse before starting ranks.
void check_resume_world_size(const std::string& run_dir, int64_t world_size);

}  // namespace stoch::train
