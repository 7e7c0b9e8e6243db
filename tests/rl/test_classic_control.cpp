// CartPole-v1, Acrobot-v1 and MountainCar-v0 checked step for step against Gymnasium itself
// (tests/rl/classic_control_reference.py, run once in the project's Python when STOCH_PYTHON
// names it), plus reset distributions, determinism, save/load and the registry.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/registry.h"
#include "core/rng.h"
#include "rl/envs/acrobot.h"
#include "rl/envs/cartpole.h"
#include "rl/envs/env.h"
#include "rl/envs/mountain_car.h"
#include "test_util.h"

namespace {

using stoch::Rng;
using stoch::rl::Env;
using stoch::rl::EnvEntry;
using stoch::rl::EnvOptions;
using stoch::rl::StepResult;
namespace fs = std::filesystem;

const std::vector<std::string> kEnvNames = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0"};

using stoch::test::python_path;

std::string script_path() {
  return stoch::test::source_path("tests/rl/classic_control_reference.py");
}

// A concrete environment behind the Env interface, with its exact-state hooks.
struct Handle {
  std::unique_ptr<Env> env;
  std::function<void(const std::vector<double>&, int)> set_physics;
  std::function<std::vector<double>()> physics;
};

template <class E>
Handle make_handle(const EnvOptions& options) {
  auto env = std::make_unique<E>(options);
  E* raw = env.get();
  return {std::move(env), [raw](const std::vector<double>& s, int n) { raw->set_physics(s, n); },
          [raw] { return raw->physics(); }};
}

Handle make_env(const std::string& name, int max_steps = 0) {
  EnvOptions options;
  options.max_episode_steps = max_steps;
  if (name == "CartPole-v1") return make_handle<stoch::rl::CartPole>(options);
  if (name == "Acrobot-v1") return make_handle<stoch::rl::Acrobot>(options);
  if (name == "MountainCar-v0") return make_handle<stoch::rl::MountainCar>(options);
  throw std::invalid_argument("no such environment: " + name);
}

int64_t obs_size(const Env& env) {
  int64_t n = 1;
  for (int64_t d : env.observation_shape()) n *= d;
  return n;
}

std::vector<float> observe(const Env& env) {
  std::vector<float> out(obs_size(env));
  env.observe(out.data());
  return out;
}

// ---- The reference: one Python process for every case ----------------------------------------

struct Case {
  std::string env;
  int max_steps;       // 0: the registered limit
  std::string policy;  // "random" or "heuristic" (reaches the goal / balances)
  int count;
  int seed;
};

// Random actions give the time-limit truncations (MountainCar, Acrobot) and CartPole's
// terminations; the heuristic gives MountainCar's and Acrobot's terminations and CartPole's
// 500-step truncations. The cases with a limit check the max_episode_steps override against
// gymnasium.make(..., max_episode_steps=N).
const std::vector<Case> kCases = {
    {"CartPole-v1", 0, "random", 40, 1000},        {"CartPole-v1", 0, "heuristic", 12, 2000},
    {"CartPole-v1", 20, "random", 30, 3000},       {"Acrobot-v1", 0, "random", 12, 4000},
    {"Acrobot-v1", 0, "heuristic", 40, 5000},      {"Acrobot-v1", 60, "heuristic", 10, 6000},
    {"MountainCar-v0", 0, "random", 30, 7000},     {"MountainCar-v0", 0, "heuristic", 30, 8000},
    {"MountainCar-v0", 90, "heuristic", 10, 9000},
};
constexpr int kResets = 3000;  // Gymnasium start states per environment
constexpr int kResetSeed = 11;

struct RefStep {
  int action = 0;
  double reward = 0;
  bool terminated = false, truncated = false;
  std::vector<double> obs, state;
};

struct RefEpisode {
  int case_index = 0;
  std::vector<double> init, obs;
  std::vector<RefStep> steps;
};

struct Reference {
  bool ok = false;
  std::string error;  // why ok is false
  bool skip = false;  // gymnasium is not importable
  std::vector<RefEpisode> episodes;
  std::map<std::string, std::vector<std::vector<double>>> resets;
};

std::vector<double> numbers(std::istringstream& in) {
  std::vector<double> v;
  for (std::string tok; in >> tok && tok != ";";) {
    char* end = nullptr;
    v.push_back(std::strtod(tok.c_str(), &end));
    if (*end != '\0') throw std::runtime_error("not a number: " + tok);
  }
  return v;
}

Reference run_reference() {
  Reference ref;
  std::string cmd = "'" + python_path() + "' '" + script_path() + "'";
  for (const auto& c : kCases)
    cmd += " episodes:" + c.env + ":" + std::to_string(c.max_steps) + ":" + c.policy + ":" +
           std::to_string(c.count) + ":" + std::to_string(c.seed);
  for (const auto& name : kEnvNames)
    cmd += " resets:" + name + ":" + std::to_string(kResets) + ":" + std::to_string(kResetSeed);
  // stderr apart: Gymnasium's warnings there must not be read as records.
  const std::string err_path =
      (fs::temp_directory_path() / ("stoch-test-classic-" + std::to_string(::getpid()) + ".err"))
          .string();
  cmd += " 2>'" + err_path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    ref.error = "popen failed: " + cmd;
    return ref;
  }
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  std::ifstream err_in(err_path);
  const std::string err((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  fs::remove(err_path);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
    ref.skip = true;
    ref.error = err;
    return ref;
  }
  if (status != 0) {
    ref.error = "reference script failed (status " + std::to_string(status) + "): " + err;
    return ref;
  }
  try {
    std::istringstream lines(out);
    int reset_case = 0;
    for (std::string line; std::getline(lines, line);) {
      std::istringstream in(line);
      std::string kind;
      in >> kind;
      if (kind == "episode") {
        ref.episodes.emplace_back();
        in >> ref.episodes.back().case_index;
      } else if (kind == "init") {
        ref.episodes.back().init = numbers(in);
      } else if (kind == "obs") {
        ref.episodes.back().obs = numbers(in);
      } else if (kind == "step") {
        RefStep s;
        int te = 0, tr = 0;
        std::string sep;
        in >> s.action >> s.reward >> te >> tr >> sep;
        s.terminated = te != 0;
        s.truncated = tr != 0;
        s.obs = numbers(in);
        s.state = numbers(in);
        ref.episodes.back().steps.push_back(std::move(s));
      } else if (kind == "reset") {
        // Reset records come in the order of the resets: cases, one environment each.
        ref.resets[kEnvNames.at(reset_case)].push_back(numbers(in));
        if (ref.resets[kEnvNames[reset_case]].size() == kResets) ++reset_case;
      } else if (kind != "end") {
        throw std::runtime_error("unexpected line: " + line);
      }
    }
  } catch (const std::exception& e) {
    ref.error = std::string("cannot parse the reference output: ") + e.what();
    return ref;
  }
  ref.ok = true;
  return ref;
}

const Reference& reference() {
  static const Reference ref = run_reference();
  return ref;
}

#define REQUIRE_REFERENCE()                                                        \
  do {                                                                             \
    STOCH_REQUIRE(stoch::test::python_missing("gymnasium, numpy"));                \
    STOCH_REQUIRE(script_path().empty() ? "STOCH_SOURCE_DIR is not defined" : ""); \
    STOCH_REQUIRE(reference().skip ? reference().error : "");                      \
    ASSERT_TRUE(reference().ok) << reference().error;                              \
  } while (0)

// ---- Step-for-step comparison ------------------------------------------------------------------

// Observations are float32 roundings of the float64 state: equal up to one float32 rounding.
bool close(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b));
}

void compare_with_gymnasium(const std::string& name) {
  int episodes = 0, steps = 0, terminations = 0, truncations = 0, overrides = 0;
  int64_t state_values = 0, state_exact = 0;
  double max_obs_dev = 0, max_state_dev = 0;
  for (const auto& ep : reference().episodes) {
    const Case& c = kCases.at(ep.case_index);
    if (c.env != name) continue;
    ++episodes;
    Handle h = make_env(name, c.max_steps);
    h.set_physics(ep.init, 0);
    const std::string where =
        name + " case " + std::to_string(ep.case_index) + " episode " + std::to_string(episodes);
    std::vector<float> obs = observe(*h.env);
    ASSERT_EQ(obs.size(), ep.obs.size()) << where;
    for (size_t i = 0; i < obs.size(); ++i) {
      ASSERT_TRUE(close(obs[i], ep.obs[i], 1e-6)) << where << " reset obs[" << i << "]";
      max_obs_dev = std::max(max_obs_dev, std::fabs(obs[i] - ep.obs[i]));
    }
    ASSERT_FALSE(ep.steps.empty()) << where;
    for (size_t t = 0; t < ep.steps.size(); ++t) {
      const RefStep& ref = ep.steps[t];
      const std::string at = where + " step " + std::to_string(t + 1);
      const StepResult r = h.env->step(ref.action);
      ++steps;
      ASSERT_EQ(r.reward, ref.reward) << at;
      ASSERT_EQ(r.terminated, ref.terminated) << at;
      ASSERT_EQ(r.truncated, ref.truncated) << at;
      h.env->observe(obs.data());
      ASSERT_EQ(obs.size(), ref.obs.size()) << at;
      for (size_t i = 0; i < obs.size(); ++i) {
        ASSERT_TRUE(close(obs[i], ref.obs[i], 1e-6))
            << at << " obs[" << i << "] " << obs[i] << " vs " << ref.obs[i];
        max_obs_dev = std::max(max_obs_dev, std::fabs(obs[i] - ref.obs[i]));
      }
      const std::vector<double> state = h.physics();
      ASSERT_EQ(state.size(), ref.state.size()) << at;
      for (size_t i = 0; i < state.size(); ++i) {
        ASSERT_TRUE(close(state[i], ref.state[i], 1e-9))
            << at << " state[" << i << "] " << state[i] << " vs " << ref.state[i];
        max_state_dev = std::max(max_state_dev, std::fabs(state[i] - ref.state[i]));
        ++state_values;
        state_exact += state[i] == ref.state[i];
      }
      // Gymnasium's episode ends exactly where ours does: the flags above matched at every step.
      if (t + 1 == ep.steps.size()) {
        ASSERT_TRUE(r.terminated || r.truncated) << at;
        terminations += r.terminated;
        truncations += r.truncated;
        if (c.max_steps > 0 && r.truncated) {
          EXPECT_EQ(t + 1, static_cast<size_t>(c.max_steps)) << at;
          ++overrides;
        }
      }
    }
  }
  std::printf(
      "[ %s ] %d episodes, %d steps (%d terminated, %d truncated, %d at an overridden limit); "
      "max |obs - gymnasium| %.3g, max |state - gymnasium| %.3g, %lld of %lld state values "
      "bit-identical\n",
      name.c_str(), episodes, steps, terminations, truncations, overrides, max_obs_dev,
      max_state_dev, static_cast<long long>(state_exact), static_cast<long long>(state_values));
  EXPECT_GE(episodes, 50);
  // Both endings must have been compared, including the time limit.
  EXPECT_GT(terminations, 0);
  EXPECT_GT(truncations, 0);
  EXPECT_GT(overrides, 0);
}

TEST(ClassicControl, CartPoleMatchesGymnasium) {
  REQUIRE_REFERENCE();
  compare_with_gymnasium("CartPole-v1");
}

TEST(ClassicControl, AcrobotMatchesGymnasium) {
  REQUIRE_REFERENCE();
  compare_with_gymnasium("Acrobot-v1");
}

TEST(ClassicControl, MountainCarMatchesGymnasium) {
  REQUIRE_REFERENCE();
  compare_with_gymnasium("MountainCar-v0");
}

// ---- Reset distribution -------------------------------------------------------------------------

struct StartRange {
  double low, high;  // uniform on [low, high); low == high: a constant
};

// Gymnasium's reset ranges (Acrobot's start state is rounded to float32, so its ends are too).
std::vector<StartRange> start_ranges(const std::string& name) {
  if (name == "CartPole-v1") return std::vector<StartRange>(4, {-0.05, 0.05});
  if (name == "Acrobot-v1") return std::vector<StartRange>(4, {-0.1f, 0.1f});
  return {{-0.6, -0.4}, {0.0, 0.0}};
}

std::vector<std::vector<double>> cpp_resets(const std::string& name, int n, uint64_t seed) {
  Handle h = make_env(name);
  h.env->seed(seed);
  std::vector<std::vector<double>> out;
  for (int i = 0; i < n; ++i) {
    h.env->reset();
    out.push_back(h.physics());
  }
  return out;
}

// Two-sample Kolmogorov-Smirnov statistic.
double ks_statistic(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::fabs(double(i) / a.size() - double(j) / b.size()));
  }
  return d;
}

TEST(ClassicControl, ResetsFollowGymnasiumRanges) {
  constexpr int kN = 20000;
  for (const auto& name : kEnvNames) {
    const auto ranges = start_ranges(name);
    const auto starts = cpp_resets(name, kN, 3);
    for (size_t d = 0; d < ranges.size(); ++d) {
      const auto [low, high] = ranges[d];
      std::vector<double> v;
      for (const auto& s : starts) v.push_back(s.at(d));
      const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
      const std::string what = name + " start[" + std::to_string(d) + "]";
      if (low == high) {
        EXPECT_EQ(*lo, low) << what;
        EXPECT_EQ(*hi, low) << what;
        continue;
      }
      const double w = high - low;
      EXPECT_GE(*lo, low) << what;
      EXPECT_LE(*hi, high) << what;
      // The whole range is covered: with 20000 draws, none in an end's 1% has odds 2e-88.
      EXPECT_LT(*lo, low + 0.01 * w) << what;
      EXPECT_GT(*hi, high - 0.01 * w) << what;
      double mean = 0, var = 0;
      for (double x : v) mean += x / kN;
      for (double x : v) var += (x - mean) * (x - mean) / (kN - 1);
      // Five standard errors of a uniform's mean and variance (fourth moment w^4 / 80).
      EXPECT_NEAR(mean, (low + high) / 2, 5 * w / std::sqrt(12.0 * kN)) << what;
      EXPECT_NEAR(var, w * w / 12, 5 * w * w * std::sqrt((1.0 / 80 - 1.0 / 144) / kN)) << what;
      if (name == "Acrobot-v1") {  // stored as float32, as Gymnasium's astype(np.float32)
        for (double x : v) ASSERT_EQ(x, static_cast<double>(static_cast<float>(x))) << what;
      }
    }
  }
}

TEST(ClassicControl, ResetsMatchGymnasiumDistribution) {
  REQUIRE_REFERENCE();
  constexpr int kN = 20000;
  for (const auto& name : kEnvNames) {
    const auto& gym = reference().resets.at(name);
    ASSERT_EQ(gym.size(), static_cast<size_t>(kResets));
    const auto ours = cpp_resets(name, kN, 5);
    const auto ranges = start_ranges(name);
    for (size_t d = 0; d < ranges.size(); ++d) {
      std::vector<double> a, b;
      for (const auto& s : ours) a.push_back(s.at(d));
      for (const auto& s : gym) b.push_back(s.at(d));
      for (double x : b) {  // the ranges above are Gymnasium's own
        ASSERT_GE(x, ranges[d].low) << name;
        ASSERT_LE(x, ranges[d].high) << name;
      }
      // Kolmogorov-Smirnov at the 0.1% level: c(alpha) = 1.949.
      const double crit = 1.949 * std::sqrt(double(a.size() + b.size()) / (a.size() * b.size()));
      EXPECT_LT(ks_statistic(a, b), crit) << name << " start[" << d << "]";
    }
  }
}

// ---- Determinism and exact resume ---------------------------------------------------------------

// The record of running `steps` random actions (drawn from `actions`), resetting on done.
struct Trace {
  std::vector<float> obs;
  std::vector<StepResult> results;
  bool operator==(const Trace& o) const {
    if (obs.size() != o.obs.size() || results.size() != o.results.size()) return false;
    if (std::memcmp(obs.data(), o.obs.data(), obs.size() * sizeof(float)) != 0) return false;
    for (size_t i = 0; i < results.size(); ++i)
      if (results[i].reward != o.results[i].reward ||
          results[i].terminated != o.results[i].terminated ||
          results[i].truncated != o.results[i].truncated)
        return false;
    return true;
  }
};

Trace run(Env& env, Rng& actions, int steps) {
  Trace t;
  std::vector<float> obs(obs_size(env));
  for (int i = 0; i < steps; ++i) {
    const StepResult r = env.step(static_cast<int>(actions.below(env.num_actions())));
    t.results.push_back(r);
    if (r.terminated || r.truncated) env.reset();
    env.observe(obs.data());
    t.obs.insert(t.obs.end(), obs.begin(), obs.end());
  }
  return t;
}

int episodes_in(const Trace& t) {
  int n = 0;
  for (const auto& r : t.results) n += r.terminated || r.truncated;
  return n;
}

TEST(ClassicControl, SameSeedSameEpisodes) {
  for (const auto& name : kEnvNames) {
    Handle a = make_env(name), b = make_env(name), c = make_env(name);
    a.env->seed(42);
    b.env->seed(42);
    c.env->seed(43);
    a.env->reset();
    b.env->reset();
    c.env->reset();
    Rng ra(9), rb(9), rc(9);
    const Trace ta = run(*a.env, ra, 1500), tb = run(*b.env, rb, 1500), tc = run(*c.env, rc, 1500);
    EXPECT_GE(episodes_in(ta), 3) << name;  // several resets were drawn from the stream
    EXPECT_TRUE(ta == tb) << name;
    EXPECT_FALSE(ta == tc) << name;
    EXPECT_NE(a.physics(), c.physics()) << name;
  }
}

TEST(ClassicControl, SaveLoadResumesBitForBit) {
  for (const auto& name : kEnvNames) {
    const EnvEntry& entry = stoch::registry<EnvEntry>().get(name, "env");
    auto env = entry.make(EnvOptions{});
    env->seed(7);
    env->reset();
    Rng actions(1);
    run(*env, actions, 137);
    const std::string saved = env->save_state();
    const Rng actions_at_save = actions;
    const Trace first = run(*env, actions, 1200);  // crosses resets, so the Rng is exercised
    EXPECT_GE(episodes_in(first), 2) << name;

    env->load_state(saved);
    EXPECT_EQ(env->save_state(), saved) << name;
    Rng again = actions_at_save;
    EXPECT_TRUE(run(*env, again, 1200) == first) << name << ": resumed in the same object";

    auto fresh = entry.make(EnvOptions{});
    fresh->seed(999);  // whatever it held must be replaced
    fresh->reset();
    fresh->step(0);
    fresh->load_state(saved);
    Rng third = actions_at_save;
    EXPECT_TRUE(run(*fresh, third, 1200) == first) << name << ": resumed in a new object";
  }
}

TEST(ClassicControl, LoadRejectsMalformedState) {
  for (const auto& name : kEnvNames) {
    auto env = stoch::registry<EnvEntry>().get(name, "env").make(EnvOptions{});
    env->seed(3);
    env->reset();
    env->step(1);
    const std::string saved = env->save_state();
    const std::vector<float> before = observe(*env);
    for (size_t n = 0; n < saved.size(); ++n)
      EXPECT_THROW(env->load_state(saved.substr(0, n)), std::runtime_error) << name << " " << n;
    EXPECT_THROW(env->load_state(saved + '\0'), std::runtime_error) << name;
    // A failed load leaves the environment as it was.
    EXPECT_EQ(observe(*env), before) << name;
    // Another environment's state is refused even where the sizes agree.
    for (const auto& other : kEnvNames) {
      if (other == name) continue;
      auto o = stoch::registry<EnvEntry>().get(other, "env").make(EnvOptions{});
      EXPECT_THROW(env->load_state(o->save_state()), std::runtime_error) << name << " " << other;
    }
  }
}

// States with values the dynamics never reach, found by fuzzing (tests/fuzz/fuzz_env_state.cpp):
// NaN or infinite ones came out as NaN observations, and a huge Acrobot angle made its
// turn-by-turn wrapping loop for ever. Each is refused, and the environment is left as it was.
TEST(ClassicControl, LoadRefusesStatesTheDynamicsCannotReach) {
  for (const auto& name : kEnvNames) {
    auto env = stoch::registry<EnvEntry>().get(name, "env").make(EnvOptions{});
    env->seed(3);
    env->reset();
    const std::string saved = env->save_state();
    const std::vector<float> before = observe(*env);
    for (const double v : {std::nan(""), std::numeric_limits<double>::infinity(), 1e300, -1e9}) {
      std::string bad = saved;
      std::memcpy(&bad[4], &v, sizeof v);  // the first state variable, after the 4-byte tag
      EXPECT_THROW(env->load_state(bad), std::runtime_error) << name << " " << v;
    }
    std::string zero_stream = saved;
    std::memset(&zero_stream[zero_stream.size() - 32], 0, 32);
    EXPECT_THROW(env->load_state(zero_stream), std::runtime_error) << name;
    EXPECT_EQ(observe(*env), before) << name;
    env->load_state(saved);  // the state it wrote itself still loads
  }
}

// Gymnasium's CartPole pays 1 for the terminating step and 0 for steps taken after it.
TEST(ClassicControl, CartPoleRewardAfterTermination) {
  stoch::rl::CartPole env;
  env.set_physics({0.0, 0.0, 0.3, 0.0});  // beyond the 12 degree threshold
  const StepResult first = env.step(1);
  EXPECT_TRUE(first.terminated);
  EXPECT_EQ(first.reward, 1.0f);
  const StepResult second = env.step(1);
  EXPECT_TRUE(second.terminated);
  EXPECT_EQ(second.reward, 0.0f);
  env.reset();
  EXPECT_EQ(env.step(1).reward, 1.0f);
}

// ---- Registry and options -----------------------------------------------------------------------

TEST(ClassicControl, RegistryBuildsEachEnvironment) {
  const std::map<std::string, std::pair<std::vector<int64_t>, int>> expected = {
      {"CartPole-v1", {{4}, 2}}, {"Acrobot-v1", {{6}, 3}}, {"MountainCar-v0", {{2}, 3}}};
  for (const auto& [name, shape_actions] : expected) {
    ASSERT_TRUE(stoch::registry<EnvEntry>().has(name)) << name;
    const EnvEntry& entry = stoch::registry<EnvEntry>().get(name, "env");
    EXPECT_FALSE(entry.doc.empty());
    auto env = entry.make(EnvOptions{});
    ASSERT_NE(env, nullptr);
    EXPECT_EQ(env->observation_shape(), shape_actions.first) << name;
    EXPECT_EQ(env->num_actions(), shape_actions.second) << name;
    EXPECT_FALSE(env->binary_observation()) << name;
    EXPECT_THROW(env->step(-1), std::out_of_range) << name;
    EXPECT_THROW(env->step(env->num_actions()), std::out_of_range) << name;
  }
  try {
    stoch::registry<EnvEntry>().get("CartPole-v0", "env");
    FAIL() << "an unknown name was accepted";
  } catch (const stoch::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("CartPole-v1"), std::string::npos) << e.what();
  }
}

TEST(ClassicControl, TimeLimitDefaultsAndOverride) {
  const std::map<std::string, int> defaults = {
      {"CartPole-v1", 500}, {"Acrobot-v1", 500}, {"MountainCar-v0", 200}};
  for (const auto& [name, limit] : defaults) {
    for (int max_steps : {0, 7}) {
      const int expect = max_steps > 0 ? max_steps : limit;
      Handle h = make_env(name, max_steps);
      // From rest (CartPole upright, Acrobot hanging, the car on the valley floor) no episode
      // terminates within the limit.
      std::vector<double> rest(h.physics().size(), 0.0);
      if (name == "MountainCar-v0") rest[0] = -M_PI / 6;  // the valley floor
      h.set_physics(rest, 0);
      for (int t = 1; t <= expect; ++t) {
        int action = 1;               // no torque, no push
        if (name == "CartPole-v1") {  // a balancing controller: push under the falling pole
          const auto s = h.physics();
          action = s[2] + 0.3 * s[3] + 0.01 * s[0] + 0.05 * s[1] > 0;
        }
        const StepResult r = h.env->step(action);
        ASSERT_FALSE(r.terminated) << name << " step " << t;
        ASSERT_EQ(r.truncated, t == expect) << name << " step " << t;
      }
      // set_physics can also resume mid-episode.
      h.set_physics(rest, expect - 1);
      EXPECT_TRUE(h.env->step(1).truncated) << name;
    }
  }
}

}  // namespace
