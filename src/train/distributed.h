// Data parallelism over PyTorch's c10d: every process (a rank) holds the same model, trains on
// its own share of each step's micro-batches, and the ranks sum their gradients before every
// optimiser step, so they stay identical. The environment is torchrun's (RANK, LOCAL_RANK,
// WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK, and its agent's store);
// `stoch train --nproc N` sets the same variables for the processes it starts, and any launcher
// that sets them works across hosts. The backend is Gloo on the CPU. Without WORLD_SIZE, or
// with WORLD_SIZE=1, nothing here is constructed and the run trains in this one process.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stoch::train {

struct DistConfig;

struct WorldEnv {
  int64_t rank = 0;
  int64_t local_rank = 0;
  int64_t world_size = 1;
  int64_t local_world_size = 1;  // ranks on this machine: they share its cores
  int64_t node_rank = 0;         // GROUP_RANK: which machine, for messages
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  // torchrun's c10d rendezvous hosts the store itself (TORCHELASTIC_USE_AGENT_STORE): every
  // rank connects to it; otherwise rank 0 serves it.
  bool agent_store = false;
  int64_t restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: keeps one attempt's keys apart
};

// What the ranks check with each other when they join.
struct Rendezvous {
  std::string config_text;  // the resolved config: must be the same on every rank
  std::string run_dir;      // must be the same directory for every rank (a shared filesystem)
  int64_t attempt = 0;      // rollbacks so far: each meeting of the ranks gets its own keys
  // The task's data facts, a checksum of sample windows among them: must be the same on every
  // rank (a relative path read from another directory, another host's copy of the files).
  std::string data_text;
};

// Reads torchrun's variables; an unset WORLD_SIZE means one process. Throws InputError naming
// the variable when one is malformed or out of range.
WorldEnv read_world_env();

// LibTorch threads for one rank: the configured count (0: every core) split evenly among the
// ranks on this machine, at least one.
int64_t threads_per_rank(int64_t configured, const WorldEnv& env);

// The backend `dist.backend` names for `device` ("gloo" or "nccl"); throws InputError when the
// two do not go together or this build lacks it (CPU: built without the Gloo headers; CUDA:
// without NCCL's). Checked before anything is written.
std::string data_parallel_backend(const c10::Device& device, const std::string& setting);

// A connected group of ranks. Collectives must be called in the same order on every rank.
class Distributed {
 public:
  // A collective in flight; wait() returns once its result is in the tensor it was given.
  class Pending {
   public:
    void wait();  // a failed collective ends the run (the watchdog names the lost rank)
    bool valid() const { return impl_ != nullptr; }

   private:
    friend class Distributed;
    struct Impl;
    std::shared_ptr<Impl> impl_;
  };

  // Blocks until all WORLD_SIZE ranks have joined at MASTER_ADDR:MASTER_PORT; throws as
  // data_parallel_backend does, and InputError on every rank when the ranks' configs differ
  // (naming the first differing key) or they do not share the run directory. Then watches the
  // other ranks (train/watchdog.h): a rank silent for dist.timeout_s ends the run.
  Distributed(const WorldEnv& env, const c10::Device& device, const DistConfig& cfg,
              const Rendezvous& checks);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }

  // In-place sum (or maximum) over ranks of a contiguous tensor.
  Pending all_reduce_sum_async(const at::Tensor& t);
  Pending all_reduce_max_async(const at::Tensor& t);
  void all_reduce_sum(const at::Tensor& t) { all_reduce_sum_async(t).wait(); }

  // Sharded training (train/zero.h), over flat float tensors: `out` (n elements) becomes this
  // rank's n-element slice of the sum over ranks of `in` (W * n elements); and `out` (W * n)
  // becomes every rank's `in` (n) end to end, in rank order.
  void reduce_scatter_sum(at::Tensor out, at::Tensor in);
  void all_gather_flat(at::Tensor out, at::Tensor in);

  // Overwrites each tensor with rank 0's.
  void broadcast_from_main(const std::vector<at::Tensor>& tensors);

  // Every rank's copy of `t` (same shape and dtype on every rank), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& t);

  void barrier();

  std::string backend_name() const;

 private:
  struct Impl;
  WorldEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stoch::train
