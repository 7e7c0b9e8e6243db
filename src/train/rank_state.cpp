#include "train/rank_state.h"

#include <torch/torch.h>

#include <fstream>
#include <map>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "train/distributed.h"

namespace stoch::train {
namespace {

// The default generators of the CPU and, when training there, the CUDA device: dropout draws
// from them, so they are part of the exact state.
std::vector<std::pair<std::string, at::Generator>> generators(const c10::Device& device) {
  std::vector<std::pair<std::string, at::Generator>> g = {
      {"torch_cpu", at::globalContext().defaultGenerator(c10::Device(c10::kCPU))}};
  if (device.is_cuda()) g.emplace_back("torch_cuda", at::globalContext().defaultGenerator(device));
  return g;
}

// A rank's name for a generator in checkpoints: rank 0 keeps the single-process name.
std::string rng_name(const std::string& name, int64_t rank) {
  return rank == 0 ? name : stoch::str(name, ".rank", rank);
}

}  // namespace

TensorList rng_tensors(const c10::Device& device, Distributed* dist) {
  TensorList out;
  for (auto& [name, gen] : generators(device)) {
    if (!dist) {
      out.emplace_back(name, gen.get_state());
      continue;
    }
    const auto all = dist->all_gather(gen.get_state());
    for (size_t r = 0; r < all.size(); ++r)
      out.emplace_back(rng_name(name, static_cast<int64_t>(r)), all[r]);
  }
  return out;
}

void restore_rng(const TensorList& saved, const c10::Device& device, int64_t rank, bool may_be_new,
                 const std::string& file) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  for (auto& [name, gen] : generators(device)) {
    auto it = by_name.find(rng_name(name, rank));
    if (it == by_name.end() && may_be_new) continue;
    if (it == by_name.end())
      throw InputError(stoch::str(file, ": no RNG state ", rng_name(name, rank)));
    try {
      gen.set_state(it->second);
    } catch (const c10::Error& e) {
      throw InputError(stoch::str(file, ": RNG state ", rng_name(name, rank),
                                  " is not one this LibTorch restores (",
                                  e.what_without_backtrace(), ")"));
    }
  }
}

int64_t resume_grad_accum(const std::string& dir, const nlohmann::json& state, int64_t world_size,
                          int64_t configured_accum) {
  const int64_t saved = state.value("world_size", int64_t{1});
  // The micro-batches per step stay what the run began with through every resume: an elastic
  // resume's grad_accum is not the config's, so the checkpoint's count decides, on any number of
  // ranks. Without it (older checkpoints) the count is world size x grad_accum, which cannot
  // change on resume, so the configured value is the saved one.
  if (!state.contains("micro_batches_per_step") && saved == world_size) return configured_accum;
  const int64_t per_step = state.value("micro_batches_per_step", saved * configured_accum);
  if (per_step % world_size != 0)
    throw InputError(stoch::str(dir, ": written by a run of world size ", saved, " with ", per_step,
                                " micro-batches per step, which do not split evenly over ",
                                world_size, " ranks; resume on a number of ranks that divides ",
                                per_step));
  return per_step / world_size;
}

void check_resume_world_size(const std::string& run_dir, int64_t world_size,
                             int64_t configured_accum) {
  // The checkpoint the resume will start from: a damaged newer one is skipped there too.
  const auto ckpt = CheckpointStore(run_dir).load_latest_state();
  if (ckpt) resume_grad_accum(ckpt->dir, ckpt->state, world_size, configured_accum);
}

}  // namespace stoch::train
