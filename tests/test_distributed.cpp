// Data-parallel training over Gloo: two ranks with grad_accum 1 train like one process with
// grad_accum 2, resume exactly, refuse a world size the step's micro-batches do not split over,
// stop together on SIGTERM, and run under torchrun as under --nproc.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <map>

#include "core/errors.h"
#include "core/torch/safetensors.h"
#include "data_parallel_test.h"
#include "test_util.h"
#include "train/distributed.h"

namespace stoch {
namespace {

using test::train_losses;

std::map<int64_t, double> eval_losses(const std::string& run_dir) {
  return test::metric_by_step(run_dir, "eval", "val/loss");
}

std::map<std::string, torch::Tensor> model_at(const std::string& run, int64_t step) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : read_safetensors(test::checkpoint_dir(run, step) + "/model.safetensors"))
    out[name] = t;
  return out;
}

using test::expect_close;

class DataParallel : public test::DataParallelTest {
 protected:
  DataParallel() : DataParallelTest("ddp") {}
};

TEST_F(DataParallel, TwoRanksTrainLikeOneProcessWithTwiceTheAccumulation) {
  // Dropout draws per-rank masks, so the comparison with one process needs it off. Small
  // buckets make several all-reduces per step, which must pair up in order across ranks.
  const std::string common = " --set model.dropout=0";
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/one" + common);
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/two --nproc 2" + common +
                      " --set train.grad_accum=1 --set train.allreduce_bucket_mb=0.002");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("data parallel: 2 ranks"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("all-reduced in 1 buckets"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("all-reduced in "), std::string::npos) << r.output;

  const auto one = train_losses(dir_ + "/one"), two = train_losses(dir_ + "/two");
  ASSERT_EQ(one.size(), 20u);
  expect_close(one, two, "train loss");
  expect_close(eval_losses(dir_ + "/one"), eval_losses(dir_ + "/two"), "val/loss");
  // Tokens per step count every rank's.
  const auto rate = test::metric_by_step(dir_ + "/two", "train", "tokens_per_s");
  EXPECT_EQ(rate.size(), 20u);

  const auto a = model_at(dir_ + "/one", 20), b = model_at(dir_ + "/two", 20);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-5, 1e-6))
        << name << ": max difference " << (t - b.at(name)).abs().max().item<double>();
  }
  const auto state = nlohmann::json::parse(
      test::read_text(test::checkpoint_dir(dir_ + "/two", 20) + "/state.json"));
  EXPECT_EQ(state["world_size"], 2);
  EXPECT_EQ(state["micro_batches"], 40);

  // A one-process run continues on two ranks, each with half the accumulation.
  r = test::run_stoch("resume " + dir_ + "/one --nproc 2 --set train.steps=25");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("world size 1 -> 2: grad_accum 2 -> 1"), std::string::npos) << r.output;
  EXPECT_EQ(train_losses(dir_ + "/one").size(), 25u);
}

TEST_F(DataParallel, ResumeOfTwoRanksIsExactAndNeedsTheSameWorldSize) {
  // Dropout on: each rank's own RNG stream must come back from the checkpoint.
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(
      cfg_, dir_, 10, 20, " --nproc 2 --set train.grad_accum=1", " --nproc 2"));

  const auto a = train_losses(dir_ + "/straight"), b = train_losses(dir_ + "/split");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  EXPECT_EQ(eval_losses(dir_ + "/straight"), eval_losses(dir_ + "/split"));

  // Two micro-batches per step do not split over three ranks (one and two ranks: see
  // test_zero.cpp's elastic resume).
  const auto r = test::run_stoch("resume " + dir_ + "/split --set train.steps=30 --nproc 3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("world size 2 with 2 micro-batches per step, which do not split evenly "
                          "over 3 ranks"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(train_losses(dir_ + "/split").size(), 20u);  // nothing was written
}

// A folder without checkpoints starts afresh, even when an earlier run left its rollback record:
// rank 0 removes it, and the other ranks read it before that, joined under another attempt number
// and waited 300 s for a rank 0 that never came.
TEST_F(DataParallel, AFreshRunIgnoresAnEarlierRunsRollbackRecord) {
  const std::string run = dir_ + "/stale";
  test::fs::create_directories(run);
  test::write_text(run + "/rollbacks.json", R"({"count": 1, "lr_scale": 0.5})");
  const auto started = std::chrono::steady_clock::now();
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + run +
                           " --nproc 2 --set train.grad_accum=1 --set train.steps=4");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(120));
  EXPECT_FALSE(test::fs::exists(run + "/rollbacks.json"));
  r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ +
                      "/clean --nproc 2 --set train.grad_accum=1 --set train.steps=4");
  ASSERT_EQ(r.code, 0) << r.output;
  // The learning rate is the config's, not the stale record's half.
  EXPECT_EQ(test::metric_by_step(run, "train", "lr"),
            test::metric_by_step(dir_ + "/clean", "train", "lr"));
}

// A rank killed from outside (the OOM killer, a user's kill -9) under --nproc: the launcher names
// it and ends the run with exit 1, where it exited 137 after killing the others with nothing said.
TEST_F(DataParallel, AKilledRankIsNamedByTheLauncherAndTheRunExitsOne) {
  const std::string run = dir_ + "/killed", log = dir_ + "/killed.log";
  const pid_t launcher = test::spawn_stoch(
      {"train", cfg_, "--run-dir", run, "--nproc", "2", "--set", "train.grad_accum=1", "--set",
       "train.steps=1000000", "--set", "train.eval_every=0", "--set", "train.ckpt_every=5"},
      log);
  ASSERT_TRUE(test::wait_for(
      [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 3; }, 60));
  // Rank 1 is the launcher's second child.
  std::vector<pid_t> children;
  std::ifstream in("/proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) +
                   "/children");
  for (pid_t p = 0; in >> p;) children.push_back(p);
  ASSERT_EQ(children.size(), 2u);
  ::kill(children[1], SIGKILL);
  EXPECT_EQ(test::wait_exit(launcher), 1) << test::read_text(log);
  EXPECT_NE(
      test::read_text(log).find("rank 1 (pid " + std::to_string(children[1]) +
                                ") was killed by signal 9 (Killed); stopping the other ranks"),
      std::string::npos)
      << test::read_text(log);
  // The survivor waits for the dead rank inside a collective, deaf to SIGTERM: the launcher
  // kills it after 5 s, not the 30 s it gives ranks that can still stop in order.
  EXPECT_NE(test::read_text(log).find("1 rank still running 5 s after being told to stop; killed"),
            std::string::npos)
      << test::read_text(log);
  // The checkpoints written before stand: the run resumes.
  const auto r = test::run_stoch("resume " + run + " --nproc 2 --set train.steps=12");
  EXPECT_EQ(r.code, 0) << r.output;
}

// A port nobody listens on now (rank 0's store binds it a moment later).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A rank whose backend cannot start (an interface this host lacks) exits 2 naming it, and the
// others, waiting for it inside the backend's connect, end within dist.timeout_s: the watchdog
// started only after the connect, which waited an hour (rank 0 was still silent after 389 s).
TEST_F(DataParallel, ARankWhoseBackendFailsEndsTheOthersWithinTheTimeout) {
  const std::string port = std::to_string(free_port()), run = dir_ + "/ifname";
  const auto rank = [&](int r, const std::string& ifname) {
    return test::spawn(
        {"env", "RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=2",
         "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port,
         "GLOO_SOCKET_IFNAME=" + ifname, STOCH_BINARY, "train", cfg_, "--run-dir", run, "--set",
         "train.grad_accum=1", "--set", "dist.timeout_s=3"},
        dir_ + "/r" + std::to_string(r) + ".log");
  };
  const auto started = std::chrono::steady_clock::now();
  const pid_t r0 = rank(0, "lo"), r1 = rank(1, "nosuch0");
  EXPECT_EQ(test::wait_exit(r1), 2) << test::read_text(dir_ + "/r1.log");
  EXPECT_NE(test::read_text(dir_ + "/r1.log")
                .find("GLOO_SOCKET_IFNAME=nosuch0: this host (" +
                      [] {
                        char h[256] = {};
                        ::gethostname(h, sizeof h - 1);
                        return std::string(h);
                      }() +
                      ") has no interface nosuch0"),
            std::string::npos)
      << test::read_text(dir_ + "/r1.log");
  EXPECT_EQ(test::wait_exit(r0), 1) << test::read_text(dir_ + "/r0.log");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(90))
      << test::read_text(dir_ + "/r0.log");
}

// Ranks with the same config can still read other files: a relative data path is read from
// each rank's current directory (or hosts hold other copies). They exit 2 naming what differs;
// they trained silently on other data before (audit G, 2026-12-08).
TEST_F(DataParallel, RanksThatReadOtherDataAreRefused) {
  const std::string port = std::to_string(free_port()), run = dir_ + "/otherdata";
  test::write_text(dir_ + "/rel.yaml",
                   "task: lm\nrun: {seed: 3, threads: 1}\ndata: {source: text, files: [c.txt]}\n"
                   "model: {context: 8, n_layer: 1, n_head: 2, d_model: 16}\n"
                   "train: {steps: 2, batch_size: 2, eval_every: 0, eval_batches: 1}\n");
  for (const std::string where : {"a", "b"}) {
    test::fs::create_directories(dir_ + "/" + where);
    std::string text;
    for (int i = 0; i < 400; ++i) text += where == "a" ? "one two three\n" : "four five six\n";
    test::write_text(dir_ + "/" + where + "/c.txt", text);
  }
  const auto rank = [&](int r, const std::string& where) {
    return test::spawn({"sh", "-c",
                        "cd " + dir_ + "/" + where + " && exec env RANK=" + std::to_string(r) +
                            " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " +
                            STOCH_BINARY + " train " + dir_ + "/rel.yaml --run-dir " + run},
                       dir_ + "/d" + std::to_string(r) + ".log");
  };
  const pid_t r0 = rank(0, "a"), r1 = rank(1, "b");
  EXPECT_EQ(test::wait_exit(r0), 2) << test::read_text(dir_ + "/d0.log");
  EXPECT_EQ(test::wait_exit(r1), 2) << test::read_text(dir_ + "/d1.log");
  const std::string log = test::read_text(dir_ + "/d0.log");
  EXPECT_NE(log.find("data differs between ranks with the same config: data/windows_crc32c "),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("every rank must read the same files"), std::string::npos) << log;
  EXPECT_FALSE(test::fs::exists(run + "/checkpoints/step-00000002"));
}

TEST_F(DataParallel, SigtermStopsEveryRankAfterOneCheckpoint) {
  const std::string run = dir_ + "/term";
  int64_t last = 0;
  ASSERT_NO_FATAL_FAILURE(test::signal_midway(
      SIGTERM, 143,
      {"train", cfg_, "--run-dir", run, "--nproc", "2", "--set", "train.grad_accum=1", "--set",
       "train.steps=1000000", "--set", "train.ckpt_every=0", "--set", "train.eval_every=0"},
      run, dir_ + "/term.log", &last));
  const auto r =
      test::run_stoch("resume " + run + " --nproc 2 --set train.steps=" + std::to_string(last + 2));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(train_losses(run).size(), static_cast<size_t>(last + 2));
}

TEST_F(DataParallel, DqnRefusesSeveralRanks) {
  const auto r = test::run_stoch(std::string("train ") + STOCH_SOURCE_DIR +
                                 "/configs/rl/cartpole.yaml --nproc 2 --run-dir " + dir_ +
                                 "/dqn --set train.steps=2");
  EXPECT_EQ(r.code, 2) << r.output;
  // Said once, by the launcher, before any rank starts.
  const std::string refusal = "--nproc 2: task dqn trains in one process only";
  const auto at = r.output.find(refusal);
  EXPECT_NE(at, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(refusal, at + 1), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("rank 1"), std::string::npos) << r.output;
  EXPECT_FALSE(test::fs::exists(dir_ + "/dqn")) << r.output;
  // A one-process DQN run resumed on two ranks is refused for the same reason, not for its
  // world size.
  const std::string run = dir_ + "/dqn1";
  ASSERT_EQ(test::run_stoch(std::string("train ") + STOCH_SOURCE_DIR +
                            "/configs/rl/cartpole.yaml --run-dir " + run +
                            " --set train.steps=2 --set train.ckpt_every=2")
                .code,
            0);
  const auto resumed = test::run_stoch("resume " + run + " --nproc 2 --set train.steps=4");
  EXPECT_EQ(resumed.code, 2) << resumed.output;
  EXPECT_NE(resumed.output.find(refusal), std::string::npos) << resumed.output;
  EXPECT_EQ(resumed.output.find("grad_accum"), std::string::npos) << resumed.output;
}

TEST_F(DataParallel, BackendsThatDoNotFitTheDeviceAreRefused) {
  const auto r = test::run_stoch("train " + cfg_ + " --nproc 2 --run-dir " + dir_ +
                                 "/nccl --set dist.backend=nccl --set run.device=cpu");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("dist.backend: nccl runs on CUDA GPUs, but run.device is cpu"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(test::fs::exists(dir_ + "/nccl/checkpoints"));
}

// A TCP socket bound to a free port on 127.0.0.1 (its number in `port`); -1 when binding fails.
int loopback_socket(std::string& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  port = std::to_string(ntohs(addr.sin_port));
  return fd;
}

// Rank 0 cannot host the rendezvous (its port is taken): it says so at once, naming the address,
// rather than LibTorch's line and stack, or a claim that the ranks did not meet in 300 s.
TEST_F(DataParallel, ARendezvousPortInUseIsNamed) {
  std::string port;
  const int taken = loopback_socket(port);
  ASSERT_GE(taken, 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  const auto r = test::run_command("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port +
                                   " " + STOCH_BINARY + " train " + cfg_ + " --run-dir " + dir_ +
                                   "/taken --set train.grad_accum=1");
  ::close(taken);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: the rendezvous at 127.0.0.1:" + port + " failed: "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("EADDRINUSE"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("did not all meet"), std::string::npos) << r.output;
}

// A rank whose partner never starts waits dist.join_timeout_s, then names the address.
TEST_F(DataParallel, ARankAloneGivesUpAfterTheJoinTimeout) {
  std::string port;
  const int probe = loopback_socket(port);
  ASSERT_GE(probe, 0);
  ::close(probe);  // a free port, for rank 0 to listen on
  const auto start = std::chrono::steady_clock::now();
  const auto r = test::run_command("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port +
                                   " " + STOCH_BINARY + " train " + cfg_ + " --run-dir " + dir_ +
                                   "/alone --set train.grad_accum=1 --set dist.join_timeout_s=2");
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(
      r.output.find("rank 0 of 2: the ranks did not all meet at 127.0.0.1:" + port + " within 2 s"),
      std::string::npos)
      << r.output;
  EXPECT_GE(took, 2.0);
  EXPECT_LT(took, 60.0) << "the default 300 s wait was used";
  EXPECT_FALSE(test::fs::exists(dir_ + "/alone/checkpoints")) << r.output;
}

TEST_F(DataParallel, TorchrunStartsTheSameRanks) {
  STOCH_REQUIRE(test::python_missing("torch"));
  const std::string torchrun = test::fs::path(test::python_path()).parent_path() / "torchrun";
  STOCH_REQUIRE(test::fs::exists(torchrun) ? "" : torchrun + " not found");
  const std::string args = " train " + cfg_ + " --set train.grad_accum=1 --set train.steps=6";
  auto r = test::run_stoch(args.substr(1) + " --nproc 2 --run-dir " + dir_ + "/nproc");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string cmd = torchrun + " --standalone --no-python --nproc-per-node 2 " +
                          STOCH_BINARY + args + " --run-dir " + dir_ + "/torchrun 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_EQ(train_losses(dir_ + "/nproc"), train_losses(dir_ + "/torchrun")) << out;
}

// torchrun's variables, read in this process.
class WorldEnvTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT"})
      ::unsetenv(v);
  }
};

TEST_F(WorldEnvTest, UnsetMeansOneProcessAndBadValuesNameTheVariable) {
  TearDown();
  EXPECT_EQ(train::read_world_env().world_size, 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  const auto env = train::read_world_env();
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(train::threads_per_rank(6, env), 3);  // six threads shared by two local ranks
  EXPECT_EQ(train::threads_per_rank(1, env), 1);
  ::setenv("RANK", "4", 1);
  try {
    train::read_world_env();
    ADD_FAILURE() << "RANK=4 of WORLD_SIZE=4 was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=4"), std::string::npos) << e.what();
  }
  // Without LOCAL_RANK the rank stands for it, so it must be below LOCAL_WORLD_SIZE.
  ::setenv("RANK", "3", 1);
  ::unsetenv("LOCAL_RANK");
  try {
    train::read_world_env();
    ADD_FAILURE() << "RANK=3 with LOCAL_WORLD_SIZE=2 and no LOCAL_RANK was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("LOCAL_RANK: must be set when RANK (3) is not below "
                                         "LOCAL_WORLD_SIZE (2)"),
              std::string::npos)
        << e.what();
  }
  ::setenv("RANK", "1", 1);
  EXPECT_EQ(train::read_world_env().local_rank, 1);
  ::setenv("RANK", "0", 1);
  ::setenv("MASTER_PORT", "http", 1);
  EXPECT_THROW(train::read_world_env(), InputError);
}

}  // namespace
}  // namespace stoch
