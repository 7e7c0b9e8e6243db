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

// Restores this rank's generators from what rng_tensors saved. A rank the checkpoint's run did
// not have (a resume on more ranks) keeps its fresh seed when `may_be_new`. Errors name `file`.
void restore_rng(const TensorList& saved, const c10::Device& device, int64_t rank, bool may_be_new,
                 const std::string& file);

// The grad_accum of a run resumed on `world_size` ranks from the checkpoint in `dir` with
// training state `state`: the checkpoint's micro-batches per step split over the ranks, so that
// the global batch and the order of the data go on unchanged (the same world size: the
// configured grad_accum). Throws InputError when they do not split evenly.
int64_t resume_grad_accum(const std::string& dir, const nlohmann::json& state, int64_t world_size,
                          int64_t configured_accum);

// The same check on the newest checkpoint of `run_dir`, reading its state.json only (a damaged
// one is left for the full load to report), so a launcher can refuse before starting ranks.
void check_resume_world_size(const std::string& run_dir, int64_t world_size,
                             int64_t configured_accum);

}  // namespace stoch::train
