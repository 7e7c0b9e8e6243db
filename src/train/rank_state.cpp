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

void restore_rng(const TensorList& saved, const c10::Device& device, int64_t rank) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  for (auto& [name, gen] : generators(device)) {
    auto it = by_name.find(rng_name(name, rank));
    if (it == by_name.end())
      throw InputError(stoch::str("checkpoint lacks RNG state ", rng_name(name, rank)));
    gen.set_state(it->second);
  }
}

void check_world_size(const std::string& dir, const nlohmann::json& state, int64_t world_size) {
  const int64_t saved = state.value("world_size", int64_t{1});
  if (saved != world_size)
    throw InputError(stoch::str(dir, ": written by a run of world size ", saved,
                                ", but this run has world size ", world_size, "; resume with ",
                                saved == 1 ? "no --nproc" : stoch::str("--nproc ", saved),
                                " (or torchrun --nproc-per-node ", saved, ")"));
}

void check_resume_world_size(const std::string& run_dir, int64_t world_size) {
  const CheckpointStore store(run_dir);
  const auto steps = store.steps();
  if (steps.empty()) return;
  const std::string dir = store.folder(steps.back());
  nlohmann::json state;
  try {
    std::ifstream in(dir + "/state.json");
    state = nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return;
  }
  check_world_size(dir, state, world_size);
}

}  // namespace stoch::train
