// Helpers shared by the test suites: temporary folders, files, and running the stoch binary.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace stoch::test {

namespace fs = std::filesystem;

// The folders temp_dir made, removed when the test process ends having passed. A failed test
// keeps them for a look (its messages name them), as does STOCH_KEEP_TEST_DIRS=1; a forked
// child that exits never removes its parent's folders.
struct TempDirs {
  pid_t owner = ::getpid();
  std::vector<fs::path> paths;
  ~TempDirs() {
    const char* keep = std::getenv("STOCH_KEEP_TEST_DIRS");
    if (::getpid() != owner || (keep && *keep && std::string(keep) != "0") ||
        !::testing::UnitTest::GetInstance()->Passed())
      return;
    for (const auto& p : paths) {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  }
};

inline std::string temp_dir(const std::string& tag) {
  static TempDirs made;
  static std::mt19937_64 rng(std::random_device{}());
  fs::path p = fs::temp_directory_path() / ("stoch-test-" + tag + "-" + std::to_string(::getpid()) +
                                            "-" + std::to_string(rng() % 1000000));
  fs::remove_all(p);
  fs::create_directories(p);
  made.paths.push_back(p);
  return p.string();
}

// The project's Python (STOCH_PYTHON, set by the build), or "" when the build has none.
inline std::string python_path() {
#ifdef STOCH_PYTHON
  return STOCH_PYTHON;
#else
  return "";
#endif
}

// A file of the source tree (under STOCH_SOURCE_DIR), or "" when the build does not say where.
inline std::string source_path(const std::string& relative) {
#ifdef STOCH_SOURCE_DIR
  return std::string(STOCH_SOURCE_DIR) + "/" + relative;
#else
  return "";
#endif
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line and returns its exit code and output (stdout and stderr).
inline Result run_command(const std::string& command) {
  Result r;
  const std::string cmd = command + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Runs `stoch ARGS` through the shell and returns its exit code and output.
inline Result run_stoch(const std::string& args) {
  return run_command(std::string(STOCH_BINARY) + " " + args);
}

// Runs `stoch ARGS` and expects what refused input gets: exit 2 and a message holding `message`.
inline Result expect_refused(const std::string& args, const std::string& message) {
  const auto r = run_stoch(args);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  return r;
}

// Runs `stoch train DIR/c.yaml --run-dir DIR/run ARGS` and expects what refused input gets: exit
// 2, a message holding `message`, and no run folder. Returns the result for further checks.
inline Result expect_train_refused(const std::string& dir, const std::string& message,
                                   const std::string& args = "") {
  const auto r =
      expect_refused("train " + dir + "/c.yaml --run-dir " + dir + "/run" + args, message);
  EXPECT_FALSE(std::filesystem::exists(dir + "/run")) << "a refused run left its folder\n"
                                                      << r.output;
  return r;
}

// Runs SCRIPT_PATH ARGS in the project's Python, with ENV ("NAME=VALUE ...") set.
inline Result run_python(const std::string& script_path, const std::string& args = "",
                         const std::string& env = "") {
  return run_command(env + " '" + python_path() + "' '" + script_path + "' " + args);
}

// Whether this is CI (CI=true), where a missing reference package is a failure, not a skip.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Why the project's Python cannot import MODULES ("tokenizers, numpy"), or "" when it can.
inline std::string python_missing(const std::string& modules) {
  const std::string py = python_path();
  if (py.empty() || !fs::exists(py))
    return "the project's Python (STOCH_PYTHON) is not available: '" + py + "'";
  const Result r = run_command("'" + py + "' -c 'import " + modules + "'");
  if (r.code != 0) return modules + " not importable by " + py + ": " + r.output;
  return "";
}

// Skips the test for the reason WHY_MISSING gives, or fails it in CI; nothing when "".
#define STOCH_REQUIRE(why_missing)               \
  do {                                           \
    const std::string why = (why_missing);       \
    if (!why.empty()) {                          \
      if (::stoch::test::in_ci()) FAIL() << why; \
      GTEST_SKIP() << why;                       \
    }                                            \
  } while (0)

// Starts `argv` (the program found on PATH) as a child process with output to `log`; returns
// its pid.
inline pid_t spawn(std::vector<std::string> argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* f = std::fopen(log.c_str(), "w");
    ::dup2(fileno(f), 1);
    ::dup2(fileno(f), 2);
    std::vector<char*> ptrs;
    for (auto& a : argv) ptrs.push_back(a.data());
    ptrs.push_back(nullptr);
    ::execvp(ptrs[0], ptrs.data());
    _exit(127);
  }
  return pid;
}

// Starts `stoch ARGS` as a child process with output to `log`; returns its pid.
inline pid_t spawn_stoch(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv{STOCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, log);
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Counts lines of `path` containing `needle`.
inline int count_lines(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

// step -> value of `metric` on the `split` lines of RUN_DIR/metrics.jsonl; a step logged twice
// fails the test (a resumed run must re-log exactly what it lost).
inline std::map<int64_t, double> metric_by_step(const std::string& run_dir,
                                                const std::string& split,
                                                const std::string& metric) {
  std::map<int64_t, double> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    // A null is a non-finite value (the metrics writer writes NaN so): not a point.
    if (j["split"] != split || !j.contains(metric) || j[metric].is_null()) continue;
    const int64_t step = j["step"];
    if (out.count(step)) ADD_FAILURE() << "step " << step << " logged twice in " << run_dir;
    out[step] = j[metric].get<double>();
  }
  return out;
}

inline std::map<int64_t, double> train_losses(const std::string& run_dir) {
  return metric_by_step(run_dir, "train", "loss");
}

// The same steps, and values equal to float tolerance (runs that sum the same gradients in
// another order). Wrap calls in ASSERT_NO_FATAL_FAILURE where later checks depend on them.
inline void expect_close(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                         const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [step, v] : a) {
    ASSERT_TRUE(b.count(step)) << what << " step " << step;
    EXPECT_NEAR(v, b.at(step), 1e-5 * std::abs(v)) << what << " step " << step;
  }
}

// `stoch eval RUN_DIR ARGS` reprints the evaluation the run logged at its newest checkpoint
// (`step`): every metric of that eval line, to the 6 digits it prints. Wrap calls in
// ASSERT_NO_FATAL_FAILURE.
inline void expect_eval_reprints_log(const std::string& run_dir, int64_t step,
                                     const std::string& args = "") {
  const auto r = run_stoch("eval " + run_dir + " " + args);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto at = r.output.find("step " + std::to_string(step) + " ");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::map<std::string, double> printed;
  std::istringstream line(r.output.substr(at, r.output.find('\n', at) - at));
  std::string field;
  line >> field >> field;  // "step N"
  while (line >> field) {
    const auto eq = field.find('=');
    printed[field.substr(0, eq)] = std::stod(field.substr(eq + 1));
  }
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string text;
  int eval_lines = 0;
  while (std::getline(in, text)) {
    const auto j = nlohmann::json::parse(text);
    if (j["split"] != "eval" || j["step"] != step) continue;
    ++eval_lines;
    for (const auto& [key, value] : j.items()) {
      if (key == "step" || key == "split") continue;
      ASSERT_TRUE(printed.count(key)) << key << " not printed: " << r.output;
      const double v = value.get<double>();
      EXPECT_NEAR(printed[key], v, 1e-5 * std::max(1.0, std::fabs(v))) << key;
    }
  }
  EXPECT_EQ(eval_lines, 1) << run_dir;
}

// The exact-resume experiment: CONFIG trained to `steps` into DIR/straight, and to `stop_at`
// into DIR/split then continued there by `stoch resume` to `steps`. `train_flags` go to both
// trainings, `resume_flags` to the resume. Wrap calls in ASSERT_NO_FATAL_FAILURE.
inline void train_straight_and_split(const std::string& config, const std::string& dir, int stop_at,
                                     int steps, const std::string& train_flags = "",
                                     const std::string& resume_flags = "") {
  auto r = run_stoch("train " + config + " --run-dir " + dir + "/straight" + train_flags);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_stoch("train " + config + " --run-dir " + dir +
                "/split --set train.steps=" + std::to_string(stop_at) + train_flags);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_stoch("resume " + dir + "/split --set train.steps=" + std::to_string(steps) +
                resume_flags);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
}

// Polls until pred() or the timeout; returns pred().
template <class Pred>
bool wait_for(Pred pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A run's checkpoint folder of `step` (step-00000042).
inline std::string checkpoint_dir(const std::string& run, int64_t step) {
  const std::string s = std::to_string(step);
  return run + "/checkpoints/step-" + std::string(8 - s.size(), '0') + s;
}

// Starts `stoch ARGS` training into RUN (output to LOG), sends SIGNAL (SIGTERM, SIGINT) once
// five train lines are logged, and checks exit code EXPECTED_CODE (143, 130) and a checkpoint of
// the last logged step, which it returns in *last. Wrap calls in ASSERT_NO_FATAL_FAILURE.
inline void signal_midway(int signal, int expected_code, const std::vector<std::string>& args,
                          const std::string& run, const std::string& log, int64_t* last) {
  const pid_t pid = spawn_stoch(args, log);
  ASSERT_TRUE(wait_for([&] { return count_lines(run + "/metrics.jsonl", "\"train\"") >= 5; }, 60));
  ::kill(pid, signal);
  EXPECT_EQ(wait_exit(pid), expected_code) << read_text(log);
  const auto losses = train_losses(run);
  ASSERT_FALSE(losses.empty());
  *last = losses.rbegin()->first;
  EXPECT_TRUE(fs::exists(checkpoint_dir(run, *last) + "/manifest.json"))
      << "no checkpoint of step " << *last << "\n"
      << read_text(log);
}

// A config for runs of a second or two: a tiny GPT on an order-1 Markov source.
inline std::string tiny_lm_config(int steps = 20) {
  return "task: lm\n"
         "run: {seed: 3, threads: 1, device: cpu}\n"
         "data: {source: markov, vocab_size: 8, order: 1, alpha: 0.3}\n"
         "model: {context: 16, n_layer: 1, n_head: 2, d_model: 16, dropout: 0.1}\n"
         "optim: {lr: 0.01}\n"
         "schedule: {warmup_steps: 3, decay_steps: 20}\n"
         "train: {steps: " +
         std::to_string(steps) +
         ", batch_size: 4, grad_accum: 2, eval_every: 5,"
         " eval_batches: 2, ckpt_every: 5, keep_last: 3}\n"
         "log: {every: 1, console_every: 1000}\n";
}

}  // namespace stoch::test
