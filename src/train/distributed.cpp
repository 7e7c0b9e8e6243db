#include "train/distributed.h"

#include <c10/util/Logging.h>

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
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <random>

#include "core/cpus.h"
#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "train/dist_config.h"
#include "train/nccl_backend.h"
#include "train/rank_agreement.h"
#include "train/watchdog.h"

namespace stoch::train {
namespace {

// How long one collective may wait. Failures are found by the watchdog within dist.timeout_s;
// this only bounds a collective that the ranks issued in different orders (a bug). Long: the
// other ranks wait in a collective while rank 0 evaluates, runs hooks or writes a checkpoint,
// which may take more than an hour (60 minutes ended such healthy runs).
constexpr std::chrono::hours kCollectiveTimeout{24 * 7};

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

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown host";
  return buf;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// The local address this host uses to reach `host`: the one the other ranks can reach it on.
// A UDP "connection" sends nothing; it only makes the kernel choose a route.
std::string route_to(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), "9", &hints, &res) != 0 || !res) return "";
  std::string out;
  const int fd = ::socket(res->ai_family, SOCK_DGRAM, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    char text[INET6_ADDRSTRLEN] = {};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      const void* a =
          local.ss_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr)
              : &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr;
      if (::inet_ntop(local.ss_family, a, text, sizeof text)) out = text;
    }
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(res);
  return out;
}

}  // namespace

WorldEnv read_world_env() {
  WorldEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (e.world_size == 1) return e;
  e.rank = env_int("RANK", -1, 0, e.world_size - 1);
  if (e.rank < 0) throw InputError("environment RANK: must be set when WORLD_SIZE is above 1");
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1, e.world_size);
  // Unset, it is the rank, which must then be a place on this machine (it named a GPU past the
  // machine's when LOCAL_WORLD_SIZE was set alone).
  const char* local = std::getenv("LOCAL_RANK");
  if ((!local || !*local) && e.rank >= e.local_world_size)
    throw InputError(stoch::str("environment LOCAL_RANK: must be set when RANK (", e.rank,
                                ") is not below LOCAL_WORLD_SIZE (", e.local_world_size, ")"));
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, e.local_world_size - 1);
  e.node_rank = env_int("GROUP_RANK", 0, 0, e.world_size - 1);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port, 1, 65535);
  if (const char* s = std::getenv("TORCHELASTIC_USE_AGENT_STORE"))
    e.agent_store = std::string(s) == "True";
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 30);
  return e;
}

int64_t threads_per_rank(int64_t configured, const WorldEnv& env) {
  const int64_t total = configured > 0 ? configured : usable_cpus();
  return std::max<int64_t>(1, total / env.local_world_size);
}

std::string data_parallel_backend(const c10::Device& device, const std::string& setting) {
  const std::string backend = setting == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : setting;
  if (backend == "nccl" && !device.is_cuda())
    throw InputError(stoch::str("dist.backend: nccl runs on CUDA GPUs, but run.device is ",
                                device.str(), "; use gloo (or auto)"));
  if (backend == "gloo" && !device.is_cpu())
    throw InputError(stoch::str("dist.backend: stoch runs Gloo on the CPU only, but run.device is ",
                                device.str(), "; use nccl (or auto)"));
  if (backend == "nccl" && !nccl_built())
    throw InputError(
        "dist.backend: this stoch was built without NCCL's header (the torch wheel's "
        "nvidia-nccl package), so it cannot train in several CUDA processes");
  if (backend == "gloo" && !STOCH_HAVE_GLOO)
    throw InputError(
        "WORLD_SIZE: this stoch was built without the Gloo headers (Debian's libgloo-dev), so it "
        "cannot train in several CPU processes; install them (scripts/setup) and rebuild");
  return backend;
}

struct Distributed::Pending::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  Watchdog* watchdog = nullptr;
  at::Tensor result, target;  // a staged copy, and the tensor its result goes back to
};

void Distributed::Pending::wait() {
  if (!impl_) return;
  auto impl = std::move(impl_);
  try {
    impl->work->wait();
    if (impl->target.defined() && !impl->result.is_same(impl->target))
      impl->target.copy_(impl->result);
  } catch (const std::exception& e) {
    if (impl->watchdog) impl->watchdog->collective_failed(e.what());
    throw;
  }
}

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::string backend_name;
  std::unique_ptr<Watchdog> watchdog;
  std::chrono::milliseconds timeout{0};
  std::chrono::milliseconds join_timeout{300000};  // dist.join_timeout_s
  int64_t rank = 0, world = 1;
  // Where collectives run: NCCL takes CUDA tensors only, so host tensors (RNG states, votes,
  // step counts) travel through the rank's GPU; Gloo takes them where they are.
  c10::Device device{c10::kCPU};

  c10::intrusive_ptr<c10d::Backend> make_gloo(const WorldEnv& env);

  // `t` where the backend can take it (a copy on the GPU, or a contiguous copy): start() is
  // given both, and Pending::wait() copies the result back into `t`.
  at::Tensor staged(const at::Tensor& t) const {
    if (device.is_cpu() || t.device() == device) return t.is_contiguous() ? t : t.contiguous();
    return t.to(device);
  }

  Pending start(c10::intrusive_ptr<c10d::Work> work, at::Tensor result = {},
                at::Tensor target = {}) {
    Pending p;
    p.impl_ = std::make_shared<Pending::Impl>(
        Pending::Impl{std::move(work), watchdog.get(), std::move(result), std::move(target)});
    return p;
  }

  Pending all_reduce(const at::Tensor& t, c10d::ReduceOp op) {
    std::vector<at::Tensor> v{staged(t)};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    auto work = backend->allreduce(v, o);
    return start(std::move(work), v[0], t);
  }

  // Every rank's `value` under `name`, in rank order.
  std::vector<std::string> exchange(const std::string& name, const std::string& value) {
    store->set(stoch::str(name, "/", rank), value);
    std::vector<std::string> keys;
    for (int64_t r = 0; r < world; ++r) keys.push_back(stoch::str(name, "/", r));
    store->wait(keys, join_timeout);
    std::vector<std::string> out;
    for (const auto& v : store->multiGet(keys)) out.emplace_back(v.begin(), v.end());
    // The store lives in rank 0's process: when the values make every rank stop (configs that
    // differ), rank 0 must not exit before the others have read them.
    store->set(stoch::str(name, "/read/", rank), "");
    if (rank == 0) {
      std::vector<std::string> read;
      for (int64_t r = 0; r < world; ++r) read.push_back(stoch::str(name, "/read/", r));
      store->wait(read, join_timeout);
    }
    return out;
  }

  // Rank 0 leaves a file with random content in the run directory; every rank must find it
  // there. A private directory per host would lose checkpoints on resume.
  void check_shared_run_dir(const std::string& run_dir, const std::vector<std::string>& who) {
    std::string token;
    const std::string name = "/.rendezvous";
    if (rank == 0) {
      token = stoch::str(std::random_device{}(), "-", ::getpid());
      write_file_durably(run_dir + name, token);
    }
    token = exchange("run_dir_token", token)[0];
    std::string seen;
    std::ifstream(run_dir + name) >> seen;
    const auto verdicts = exchange("run_dir_seen", seen == token ? "" : run_dir);
    if (rank == 0) std::remove((run_dir + name).c_str());
    for (size_t r = 1; r < verdicts.size(); ++r)
      if (!verdicts[r].empty())
        throw InputError(stoch::str(
            "run dir ", verdicts[r], ": ", who[r], " does not see the files ", who[0],
            " writes there; every rank needs the run directory on one shared filesystem"));
  }
};

Distributed::Distributed(const WorldEnv& env, const c10::Device& device, const DistConfig& cfg,
                         const Rendezvous& checks)
    : env_(env), impl_(std::make_unique<Impl>()) {
  impl_->backend_name = data_parallel_backend(device, cfg.backend);
  impl_->rank = env.rank;
  impl_->world = env.world_size;
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0 && !env.agent_store;
  so.numWorkers = static_cast<size_t>(env.world_size);
  impl_->join_timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.join_timeout_s * 1000));
  so.timeout = impl_->join_timeout;
  so.multiTenant = true;
  std::vector<std::string> who;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    // torchrun's own keys live in the agent's store; each restart gets fresh keys.
    impl_->store = c10::make_intrusive<c10d::PrefixStore>(
        stoch::str("stoch/", env.restart_count, "/", checks.attempt), std::move(tcp));
    if (env.rank > 0) impl_->store->set(Watchdog::heartbeat_key(env.rank), "0");
    who = impl_->exchange(
        "who", stoch::str("rank ", env.rank, " on ", host_name(), " (pid ", ::getpid(), ")"));
  } catch (const std::exception& e) {
    // LibTorch says only "Timed out ... 1/2 clients joined", with a stack: say what it means.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    if (what.find("imed out") == std::string::npos)  // a port in use, an address that fails
      throw std::runtime_error(stoch::str("rank ", env.rank, " of ", env.world_size,
                                          ": the rendezvous at ", env.master_addr, ":",
                                          env.master_port, " failed: ", what));
    throw std::runtime_error(
        stoch::str("rank ", env.rank, " of ", env.world_size, ": the ranks did not all meet at ",
                   env.master_addr, ":", env.master_port, " within ", cfg.join_timeout_s, " s (",
                   what, "); a rank that failed before joining says why in its own output"));
  }
  check_configs_agree(impl_->exchange("config", checks.config_text), who);
  check_data_agrees(impl_->exchange("data", checks.data_text), who);
  impl_->check_shared_run_dir(checks.run_dir, who);

  // Watching before the backend connects its ranks (under kCollectiveTimeout): a rank that dies
  // or fails there, or never arrives, ends the others within dist.timeout_s, not hours later. A
  // rank whose backend fails unwinds through the watchdog, which tells the others.
  impl_->timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.timeout_s * 1000));
  impl_->watchdog =
      std::make_unique<Watchdog>(impl_->store->clone(), env.rank, who, impl_->timeout);
  if (impl_->backend_name == "nccl") {
    // One GPU per rank of this machine.
    impl_->device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
    impl_->backend = make_nccl_backend(impl_->store, static_cast<int>(env.rank),
                                       static_cast<int>(env.world_size),
                                       static_cast<int>(env.local_rank), kCollectiveTimeout);
  } else {
    impl_->backend = impl_->make_gloo(env);
  }
}

c10::intrusive_ptr<c10d::Backend> Distributed::Impl::make_gloo(const WorldEnv& env) {
#if STOCH_HAVE_GLOO
  // Not Options::create_default: it resolves this host's name for a default device first,
  // and warns where the name resolves to nothing.
  auto opts = c10::make_intrusive<c10d::ProcessGroupGloo::Options>(kCollectiveTimeout);
  // The address the other ranks reach this one on: GLOO_SOCKET_IFNAME's interfaces (as in
  // PyTorch, comma-separated), else loopback when the master is local, else the address that
  // routes to the master (the default device would bind to whatever the host name resolves
  // to, often nothing or loopback in containers).
  if (const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME"); ifnames && *ifnames) {
    for (const auto& ifname : stoch::split(ifnames, ',')) {
      try {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } catch (const std::exception&) {
        throw InputError(stoch::str("GLOO_SOCKET_IFNAME=", ifnames, ": this host (", host_name(),
                                    ") has no interface ", ifname, " with an address"));
      }
    }
  } else if (is_loopback(env.master_addr)) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else if (const std::string local = route_to(env.master_addr); !local.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  // Buckets are launched in order and each rank computes on few cores: one worker thread
  // keeps the collectives from competing with the backward pass for them.
  opts->threads = 1;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env.rank),
                                                     static_cast<int>(env.world_size), opts);
#else
  (void)env;
  throw std::runtime_error("this stoch was built without Gloo");
#endif
}

Distributed::~Distributed() {
  const bool failing = std::uncaught_exceptions() > 0;
  impl_->watchdog.reset();  // tells the others this rank is done (or failed)
  if (failing || env_.rank == 0 || env_.agent_store || !impl_->store) return;
  // Rank 0 serves the store and closes it once every rank is done. A rank that meets the others
  // again at once (after a rollback) must not reach the old store while it is closing: wait
  // for it to go (the call fails then), at most the timeout.
  // The closing store makes c10d warn, with a stack trace, on a run that ended well: quieted.
  const int level = FLAGS_caffe2_log_level;
  FLAGS_caffe2_log_level = 2;  // errors only
  try {
    impl_->store->wait({"never-set"}, impl_->timeout);
  } catch (const std::exception&) {
  }
  FLAGS_caffe2_log_level = level;
}

Distributed::Pending Distributed::all_reduce_sum_async(const at::Tensor& t) {
  return impl_->all_reduce(t, c10d::ReduceOp::SUM);
}

Distributed::Pending Distributed::all_reduce_max_async(const at::Tensor& t) {
  return impl_->all_reduce(t, c10d::ReduceOp::MAX);
}

void Distributed::reduce_scatter_sum(at::Tensor out, at::Tensor in) {
  at::Tensor o = impl_->staged(out), i = impl_->staged(in);
  impl_->start(impl_->backend->_reduce_scatter_base(o, i, c10d::ReduceScatterOptions{}), o, out)
      .wait();
}

void Distributed::all_gather_flat(at::Tensor out, at::Tensor in) {
  at::Tensor o = impl_->staged(out), i = impl_->staged(in);
  impl_->start(impl_->backend->_allgather_base(o, i, c10d::AllgatherOptions{}), o, out).wait();
}

void Distributed::broadcast_from_main(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors) {
    // Gloo needs contiguous storage; parameters and buffers usually are, but copy if not.
    std::vector<at::Tensor> v{impl_->staged(t)};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    auto work = impl_->backend->broadcast(v, o);
    impl_->start(std::move(work), v[0], t).wait();
  }
}

std::vector<at::Tensor> Distributed::all_gather(const at::Tensor& t) {
  std::vector<at::Tensor> in{impl_->staged(t)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(in[0]));
  impl_->start(impl_->backend->allgather(out, in)).wait();
  for (auto& x : out[0]) x = x.to(t.device());
  return out[0];
}

void Distributed::barrier() {
  impl_->start(impl_->backend->barrier(c10d::BarrierOptions{})).wait();
}

std::string Distributed::backend_name() const {
  return impl_->backend_name;
}

}  // namespace stoch::train
