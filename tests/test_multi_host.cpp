// Data parallelism across hosts, for real on one machine: each "host" is a Linux network
// namespace with its own hostname (a UTS namespace), joined to the other by a veth pair with
// addresses from 198.18.0.0/15 (reserved for benchmarking). The ranks can reach each other only
// over those addresses; nothing leaves the machine. The test makes and removes the namespaces
// itself and skips, saying why, where it cannot (not root, no `ip`).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>

#include "test_util.h"

namespace stoch {
namespace {

using Clock = std::chrono::steady_clock;

// Runs a shell command; returns its exit code, and its output in *out when given.
int shell(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

struct Host {
  std::string ns, name, addr;
};

class TwoHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
    const std::string tag =
        std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}() % 100000);
    hosts_ = {{"stoch-" + tag + "-a", "stoch-host-a", "198.18.0.1"},
              {"stoch-" + tag + "-b", "stoch-host-b", "198.18.0.2"}};
    // Made inside the first namespace with its peer in the second: no name is ever taken in
    // the machine's own namespace, so tests running at once cannot collide.
    std::string setup = "set -e; ip netns add " + hosts_[0].ns + "; ip netns add " + hosts_[1].ns +
                        "; ip -n " + hosts_[0].ns +
                        " link add veth0 type veth peer name veth0 netns " + hosts_[1].ns;
    for (const auto& h : hosts_)
      setup += "; ip -n " + h.ns + " addr add " + h.addr + "/24 dev veth0; ip -n " + h.ns +
               " link set veth0 up; ip -n " + h.ns + " link set lo up";
    std::string out;
    if (shell(setup, &out) != 0) {
      TearDown();
      GTEST_SKIP() << "cannot make network namespaces here: " << out;
    }
    made_ = true;
    dir_ = test::temp_dir("hosts");
    cfg_ = dir_ + "/tiny.yaml";
    // Dropout off: ranks draw their own masks, and the comparison with one process needs none.
    test::write_text(cfg_, test::tiny_lm_config(20));
  }

  void TearDown() override {
    for (pid_t p : pids_) ::kill(p, SIGKILL);
    for (pid_t p : pids_) ::waitpid(p, nullptr, 0);
    for (const auto& h : hosts_) shell("ip netns del " + h.ns);
  }

  // Starts `command` (a shell command line) on host h, output to `log`; returns its pid.
  pid_t start_on(size_t h, const std::string& command, const std::string& log) {
    const std::string inner = "hostname " + hosts_[h].name + " && exec " + command;
    const std::vector<std::string> args = {"ip",    "netns", "exec", hosts_[h].ns, "unshare",
                                           "--uts", "sh",    "-c",   inner};
    const pid_t pid = test::spawn(args, log);
    pids_.push_back(pid);
    return pid;
  }

  // `stoch ARGS` as rank `rank` of two on host `rank`, with rank 0's address as the master.
  pid_t start_rank(int rank, const std::string& args, const std::string& log,
                   const std::string& extra_env = "") {
    const std::string env = "env WORLD_SIZE=2 RANK=" + std::to_string(rank) +
                            " LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 GROUP_RANK=" + std::to_string(rank) +
                            " MASTER_ADDR=" + hosts_[0].addr + " MASTER_PORT=29500 " + extra_env +
                            " ";
    return start_on(static_cast<size_t>(rank), env + STOCH_BINARY + " " + args, log);
  }

  int wait_rank(pid_t pid) {
    pids_.erase(std::find(pids_.begin(), pids_.end(), pid));
    return test::wait_exit(pid);
  }

  // A run of two hosts that does not end by itself, checkpointing often, with a short timeout.
  std::string endless_args(const std::string& run) const {
    return "train " + cfg_ + " --run-dir " + run +
           " --set train.steps=1000000 --set train.grad_accum=1 --set train.ckpt_every=10"
           " --set train.eval_every=0 --set dist.timeout_s=" +
           std::to_string(kTimeout);
  }

  // Both ranks of endless_args(run) started, and running (train lines logged).
  std::pair<pid_t, pid_t> start_endless(const std::string& run) {
    const pid_t r0 = start_rank(0, endless_args(run), run + ".0.log");
    const pid_t r1 = start_rank(1, endless_args(run), run + ".1.log");
    EXPECT_TRUE(test::wait_for(
        [&] { return test::count_lines(run + "/metrics.jsonl", "\"train\"") >= 30; }, 60))
        << test::read_text(run + ".0.log");
    return {r0, r1};
  }

  // Waits for `pid` and checks that it ended with exit 1 within the timeout (plus a margin
  // for process exit and polling) after `since`, with a log line naming `lost`.
  void expect_lost(pid_t pid, Clock::time_point since, const std::string& log,
                   const std::string& lost) {
    const int code = wait_rank(pid);
    const double took = std::chrono::duration<double>(Clock::now() - since).count();
    EXPECT_EQ(code, 1) << test::read_text(log);
    EXPECT_LT(took, kTimeout + 1.0) << test::read_text(log);
    EXPECT_NE(test::read_text(log).find("lost " + lost), std::string::npos) << test::read_text(log);
    std::printf("[   INFO   ] ended %.2f s after the fault (dist.timeout_s %d)\n", took, kTimeout);
  }

  // The run continues from its newest complete checkpoint, on one host's two processes.
  void expect_resumes(const std::string& run) {
    const auto before = test::train_losses(run);
    ASSERT_FALSE(before.empty());
    const auto r = test::run_stoch("resume " + run + " --nproc 2 --set train.steps=" +
                                   std::to_string(before.rbegin()->first + 3));
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
    test::train_losses(run);  // fails on a step logged twice
  }

  static constexpr int kTimeout = 3;
  std::vector<Host> hosts_;
  std::vector<pid_t> pids_;
  bool made_ = false;
  std::string dir_, cfg_;
};

TEST_F(TwoHosts, TwoHostsTrainLikeOneProcessWithTwiceTheAccumulation) {
  const std::string common = " --set model.dropout=0 --set run.peak_tflops=1e-6";
  auto r = test::run_stoch("train " + cfg_ + " --run-dir " + dir_ + "/one" + common);
  ASSERT_EQ(r.code, 0) << r.output;
  // Rank 0 binds the interface GLOO_SOCKET_IFNAME names; rank 1 the address that routes to
  // the master.
  const std::string args =
      "train " + cfg_ + " --run-dir " + dir_ + "/two" + common + " --set train.grad_accum=1";
  const pid_t r0 = start_rank(0, args, dir_ + "/r0.log", "GLOO_SOCKET_IFNAME=veth0");
  const pid_t r1 = start_rank(1, args, dir_ + "/r1.log");
  ASSERT_EQ(wait_rank(r1), 0) << test::read_text(dir_ + "/r1.log");
  ASSERT_EQ(wait_rank(r0), 0) << test::read_text(dir_ + "/r0.log");
  EXPECT_NE(test::read_text(dir_ + "/r0.log").find("data parallel: 2 ranks (gloo)"),
            std::string::npos);
  test::expect_close(test::train_losses(dir_ + "/one"), test::train_losses(dir_ + "/two"), "loss");
  test::expect_close(test::metric_by_step(dir_ + "/one", "eval", "val/loss"),
                     test::metric_by_step(dir_ + "/two", "eval", "val/loss"), "val/loss");
  // CPU ranks on two machines have two machines' peak (mfu took one, so it read twice as high).
  const auto per_token = [&](const std::string& run) {
    const auto mfu = test::metric_by_step(dir_ + "/" + run, "train", "mfu");
    const auto rate = test::metric_by_step(dir_ + "/" + run, "train", "tokens_per_s");
    EXPECT_FALSE(mfu.empty()) << run;
    return mfu.empty() ? 0.0 : mfu.rbegin()->second / rate.at(mfu.rbegin()->first);
  };
  EXPECT_NEAR(per_token("two"), per_token("one") / 2, 1e-9 * per_token("one"));
}

TEST_F(TwoHosts, TorchrunWithTheC10dRendezvousAcrossHosts) {
  STOCH_REQUIRE(test::python_missing("torch"));
  const std::string torchrun =
      (test::fs::path(test::python_path()).parent_path() / "torchrun").string();
  STOCH_REQUIRE(test::fs::exists(torchrun) ? "" : "no torchrun beside STOCH_PYTHON");
  const std::string args = " train " + cfg_ + " --set model.dropout=0 --set train.grad_accum=1";
  auto r = test::run_stoch(args.substr(1) + " --nproc 2 --run-dir " + dir_ + "/nproc");
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<pid_t> agents;
  for (size_t h = 0; h < 2; ++h)
    agents.push_back(
        start_on(h,
                 torchrun + " --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint " +
                     hosts_[0].addr + ":29400 --rdzv-id stoch-test --rdzv-conf is_host=" +
                     (h == 0 ? "1" : "0") + " --local-addr " + hosts_[h].addr + " --no-python " +
                     STOCH_BINARY + args + " --run-dir " + dir_ + "/torchrun",
                 dir_ + "/agent" + std::to_string(h) + ".log"));
  for (size_t h = 0; h < 2; ++h)
    ASSERT_EQ(wait_rank(agents[h]), 0)
        << test::read_text(dir_ + "/agent" + std::to_string(h) + ".log");
  test::expect_close(test::train_losses(dir_ + "/nproc"), test::train_losses(dir_ + "/torchrun"),
                     "loss");
}

TEST_F(TwoHosts, AKilledRankEndsTheOtherWithinTheTimeoutAndTheRunResumes) {
  const std::string run = dir_ + "/kill";
  const auto [r0, r1] = start_endless(run);
  const auto t = Clock::now();
  ::kill(r1, SIGKILL);
  expect_lost(r0, t, run + ".0.log", "rank 1 on stoch-host-b");
  wait_rank(r1);
  expect_resumes(run);
}

TEST_F(TwoHosts, AStoppedRankEndsTheOtherWithinTheTimeout) {
  const std::string run = dir_ + "/stop";
  const auto [r0, r1] = start_endless(run);
  const auto t = Clock::now();
  ::kill(r1, SIGSTOP);
  expect_lost(r0, t, run + ".0.log", "rank 1 on stoch-host-b");
  ::kill(r1, SIGKILL);
  wait_rank(r1);
  expect_resumes(run);
}

TEST_F(TwoHosts, ALostRankZeroEndsTheOthersAtOnce) {
  const std::string run = dir_ + "/kill0";
  const auto [r0, r1] = start_endless(run);
  const auto t = Clock::now();
  ::kill(r0, SIGKILL);
  expect_lost(r1, t, run + ".1.log", "rank 0 on stoch-host-a");
  wait_rank(r0);
  expect_resumes(run);
}

TEST_F(TwoHosts, ACutNetworkEndsBothSidesWithinTheTimeout) {
  const std::string run = dir_ + "/cut";
  const auto [r0, r1] = start_endless(run);
  const auto t = Clock::now();
  ASSERT_EQ(shell("ip -n " + hosts_[1].ns + " link set veth0 down"), 0);
  expect_lost(r0, t, run + ".0.log", "rank 1 on stoch-host-b");
  expect_lost(r1, t, run + ".1.log", "rank 0 on stoch-host-a");
  expect_resumes(run);
}

TEST_F(TwoHosts, ALongEvaluationOnRankZeroIsNotALoss) {
  // Evaluation runs on rank 0 only while rank 1 waits in a collective; with a timeout of
  // half a second, an evaluation of many batches lasts several timeouts (10000 batches: about
  // 4 s on an idle 2-core VM; 3000 were too few there).
  const std::string run = dir_ + "/eval";
  const std::string args = "train " + cfg_ + " --run-dir " + run +
                           " --set train.steps=4 --set train.eval_every=2"
                           " --set train.eval_batches=10000 --set dist.timeout_s=0.5";
  const pid_t r0 = start_rank(0, args, run + ".0.log");
  const pid_t r1 = start_rank(1, args, run + ".1.log");
  const auto t = Clock::now();
  EXPECT_EQ(wait_rank(r1), 0) << test::read_text(run + ".1.log");
  EXPECT_EQ(wait_rank(r0), 0) << test::read_text(run + ".0.log");
  const double took = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_GT(took, 1.5) << "the evaluations were too short to test anything";
  EXPECT_EQ(test::metric_by_step(run, "eval", "val/loss").size(), 2u);
}

TEST_F(TwoHosts, RanksThatDoNotShareTheRunDirectoryAreRefused) {
  const std::string args = "train " + cfg_ + " --run-dir ";
  const pid_t r0 = start_rank(0, args + dir_ + "/here", dir_ + "/r0.log");
  const pid_t r1 = start_rank(1, args + dir_ + "/elsewhere", dir_ + "/r1.log");
  for (const auto& [pid, log] :
       {std::pair{r0, dir_ + "/r0.log"}, std::pair{r1, dir_ + "/r1.log"}}) {
    EXPECT_EQ(wait_rank(pid), 2) << test::read_text(log);
    EXPECT_NE(test::read_text(log).find("rank 1 on stoch-host-b"), std::string::npos)
        << test::read_text(log);
    EXPECT_NE(test::read_text(log).find("shared filesystem"), std::string::npos)
        << test::read_text(log);
  }
}

TEST_F(TwoHosts, RanksWithDifferentConfigsAreRefusedNamingTheKey) {
  const std::string args = "train " + cfg_ + " --run-dir " + dir_ + "/run";
  const pid_t r0 = start_rank(0, args, dir_ + "/r0.log");
  const pid_t r1 = start_rank(1, args + " --set optim.lr=0.02", dir_ + "/r1.log");
  for (const auto& [pid, log] :
       {std::pair{r0, dir_ + "/r0.log"}, std::pair{r1, dir_ + "/r1.log"}}) {
    EXPECT_EQ(wait_rank(pid), 2) << test::read_text(log);
    EXPECT_NE(test::read_text(log).find("config differs between ranks: optim.lr is 0.01 on rank 0 "
                                        "on stoch-host-a"),
              std::string::npos)
        << test::read_text(log);
  }
  EXPECT_FALSE(test::fs::exists(dir_ + "/run/checkpoints")) << "a refused run wrote a checkpoint";
}

}  // namespace
}  // namespace stoch
