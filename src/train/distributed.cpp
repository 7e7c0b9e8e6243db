#include "train/distributed.h"

// The torch wheel ships ProcessGroupGloo.hpp but not the <gloo/...> headers it includes;
// Debian's libgloo-dev provides them (scripts/setup installs it). They only have to satisfy
// declarations: this file creates the backend through LibTorch's out-of-line functions
// (createDeviceFor*, the ProcessGroupGloo constructor, its virtual collectives) and never
// touches a gloo class itself, so the older snapshot cannot disagree with the Gloo inside
// libtorch_cpu.so. Where the headers are missing (the GPU machine) the build still succeeds
// and a multi-process CPU run is refused with a clear message.
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO  // LibTorch's CMake package usually defines it already
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define STOCH_HAVE_GLOO 1
#else
#define STOCH_HAVE_GLOO 0
#endif
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {
namespace {

// Ranks that skip evaluation, hooks and checkpoint writing wait for rank 0 at the next
// collective; a long evaluation must not look like a dead peer.
constexpr std::chrono::minutes kCollectiveTimeout{60};

int64_t env_int(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    throw InputError(
        stoch::str("environment ", name, "=", v, ": expected an integer in [", lo, ", ", hi, "]"));
  return x;
}

}  // namespace

WorldEnv read_world_env() {
  WorldEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (e.world_size == 1) return e;
  e.rank = env_int("RANK", -1, 0, e.world_size - 1);
  if (e.rank < 0) throw InputError("environment RANK: must be set when WORLD_SIZE is above 1");
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1, e.world_size);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, e.local_world_size - 1);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port, 1, 65535);
  return e;
}

int64_t threads_per_rank(int64_t configured, const WorldEnv& env) {
  const int64_t total =
      configured > 0 ? configured
                     : static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max<int64_t>(1, total / env.local_world_size);
}

void check_data_parallel_backend(const c10::Device& device) {
  if (!device.is_cpu())
    throw InputError(stoch::str("run.device: data-parallel training on ", device.str(),
                                " (NCCL) is not built or tested yet; use run.device=cpu (Gloo)"));
  if (!STOCH_HAVE_GLOO)
    throw InputError(
        "WORLD_SIZE: this stoch was built without the Gloo headers (Debian's libgloo-dev), so it "
        "cannot train in several CPU processes; install them (scripts/setup) and rebuild");
}

struct Distributed::Pending::Impl {
  c10::intrusive_ptr<c10d::Work> work;
};

void Distributed::Pending::wait() {
  if (impl_) impl_->work->wait();
  impl_.reset();
}

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;

  Pending start(c10::intrusive_ptr<c10d::Work> work) {
    Pending p;
    p.impl_ = std::make_shared<Pending::Impl>(Pending::Impl{std::move(work)});
    return p;
  }
};

Distributed::Distributed(const WorldEnv& env, const c10::Device& device)
    : env_(env), impl_(std::make_unique<Impl>()) {
  check_data_parallel_backend(device);
#if STOCH_HAVE_GLOO
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<size_t>(env.world_size);
  impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);

  auto opts = c10d::ProcessGroupGloo::Options::create_default(kCollectiveTimeout);
  // The default device binds to whatever this host's name resolves to; when the master is on
  // the loopback interface every rank is local, so bind there (containers often lack a
  // resolvable hostname). GLOO_SOCKET_IFNAME picks an interface as in PyTorch.
  opts->devices.clear();
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  // Buckets are launched in order and each rank computes on few cores: one worker thread
  // keeps the collectives from competing with the backward pass for them.
  opts->threads = 1;
  impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
      impl_->store, static_cast<int>(env.rank), static_cast<int>(env.world_size), opts);
#endif
}

Distributed::~Distributed() = default;

Distributed::Pending Distributed::all_reduce_sum_async(const at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  return impl_->start(impl_->backend->allreduce(v, c10d::AllreduceOptions{}));
}

Distributed::Pending Distributed::all_reduce_max_async(const at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  return impl_->start(impl_->backend->allreduce(v, o));
}

void Distributed::broadcast_from_main(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors) {
    // Gloo needs contiguous storage; parameters and buffers usually are, but copy if not.
    at::Tensor buf = t.is_contiguous() ? t : t.contiguous();
    std::vector<at::Tensor> v{buf};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->backend->broadcast(v, o)->wait();
    if (!buf.is_same(t)) t.copy_(buf);
  }
}

std::vector<at::Tensor> Distributed::all_gather(const at::Tensor& t) {
  std::vector<at::Tensor> in{t.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(in[0]));
  impl_->backend->allgather(out, in)->wait();
  return out[0];
}

void Distributed::barrier() {
  impl_->backend->barrier(c10d::BarrierOptions{})->wait();
}

}  // namespace stoch::train
