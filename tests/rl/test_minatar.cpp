// The MinAtar games against the reference minatar 1.0.15 package, step for step: frames,
// rewards and terminal flags over whole episodes of scripted and random play, plus the
// numpy-compatible random stream, determinism, state round trips and malformed states.
// The reference runs in the project's Python (STOCH_PYTHON), once per fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/registry.h"
#include "rl/envs/env.h"
#include "rl/envs/minatar_env.h"
#include "rl/envs/numpy_random.h"
#include "test_util.h"

namespace {

using stoch::registry;
using stoch::rl::Env;
using stoch::rl::EnvEntry;
using stoch::rl::EnvOptions;
using stoch::rl::NumpyRandom;
namespace fs = std::filesystem;

const std::map<std::string, std::string> kGames = {{"asterix", "MinAtar/Asterix"},
                                                   {"breakout", "MinAtar/Breakout"},
                                                   {"freeway", "MinAtar/Freeway"},
                                                   {"seaquest", "MinAtar/Seaquest"},
                                                   {"space_invaders", "MinAtar/SpaceInvaders"}};

using stoch::test::python_path;

std::string script_path() {
  return stoch::test::source_path("tests/rl/minatar_reference.py");
}

bool have_python() {
  return !python_path().empty() && fs::exists(python_path()) && fs::exists(script_path());
}

#define SKIP_WITHOUT_PYTHON()                                                                 \
  do {                                                                                        \
    STOCH_REQUIRE(stoch::test::python_missing("minatar, numpy"));                             \
    STOCH_REQUIRE(have_python() ? "" : "STOCH_SOURCE_DIR (the reference script) is missing"); \
  } while (0)

// Runs the reference script in the given mode; its stdout, or "" with a failure recorded.
std::string run_reference(const std::string& mode) {
  const std::string err_path =
      (fs::temp_directory_path() / ("stoch-test-minatar-" + std::to_string(::getpid()) + ".err"))
          .string();
  const std::string cmd =
      "'" + python_path() + "' '" + script_path() + "' " + mode + " 2>'" + err_path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  std::ifstream err_in(err_path);
  const std::string err((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  fs::remove(err_path);
  if (status != 0) {
    ADD_FAILURE() << "minatar_reference.py " << mode << " failed: " << err;
    return "";
  }
  return out;
}

std::unique_ptr<Env> make(const std::string& name, const EnvOptions& o = {}) {
  return registry<EnvEntry>().get(name, "env").make(o);
}

int frame_size(const Env& env) {
  int n = 1;
  for (int64_t d : env.observation_shape()) n *= static_cast<int>(d);
  return n;
}

// The channels-first frame as np.packbits(...).hex() writes it (first cell = top bit).
std::string frame_hex(const Env& env) {
  std::vector<float> obs(frame_size(env));
  env.observe(obs.data());
  std::string hex;
  static const char* kDigits = "0123456789abcdef";
  for (size_t i = 0; i < obs.size(); i += 8) {
    int byte = 0;
    for (size_t b = 0; b < 8; ++b) {
      const float v = i + b < obs.size() ? obs[i + b] : 0.0f;
      EXPECT_TRUE(v == 0.0f || v == 1.0f);
      byte = byte << 1 | (v != 0.0f);
    }
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 15];
  }
  return hex;
}

// "channel c, row y, column x" of the first cell where two frames differ.
std::string first_difference(const std::string& a, const std::string& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] == b[i]) continue;
    const int x = std::stoi(a.substr(i, 1), nullptr, 16) ^ std::stoi(b.substr(i, 1), nullptr, 16);
    int bit = static_cast<int>(i) * 4;
    for (int m = 8; !(x & m); m >>= 1) ++bit;
    return "channel " + std::to_string(bit / 100) + ", row " + std::to_string(bit / 10 % 10) +
           ", column " + std::to_string(bit % 10);
  }
  return "lengths " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
}

// ---------------------------------------------------------------- numpy's RandomState

class NumpyRandomReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (have_python()) output_ = new std::string(run_reference("rng"));
  }
  static void TearDownTestSuite() {
    delete output_;
    output_ = nullptr;
  }
  static std::string* output_;
};
std::string* NumpyRandomReference::output_ = nullptr;

TEST_F(NumpyRandomReference, DrawsMatchRandomState) {
  SKIP_WITHOUT_PYTHON();
  ASSERT_TRUE(output_ && !output_->empty());
  std::istringstream in(*output_);
  NumpyRandom r;
  int compared = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string op;
    ls >> op;
    SCOPED_TRACE(line);
    if (op == "seed") {
      uint64_t s;
      ls >> s;
      r.seed_with(static_cast<uint32_t>(s));
      continue;
    }
    if (op == "rand" || op == "rands") {
      for (std::string v; ls >> v; ++compared) ASSERT_EQ(r.rand(), std::strtod(v.c_str(), nullptr));
    } else if (op == "randint" || op == "randints") {
      int64_t low, high;
      ls >> low >> high;
      for (int64_t v; ls >> v; ++compared) ASSERT_EQ(r.randint(low, high), v);
    } else if (op == "choice") {
      int64_t n, v;
      ls >> n >> v;
      ASSERT_EQ(r.choice(n), v);
      ++compared;
    } else if (op == "choicep") {
      std::string ps;
      int64_t v;
      ls >> ps >> v;
      std::vector<double> p;
      std::istringstream pin(ps);
      for (std::string x; std::getline(pin, x, ',');) p.push_back(std::strtod(x.c_str(), nullptr));
      ASSERT_EQ(r.choice(p), v);
      ++compared;
    } else {
      FAIL() << "unknown reference line";
    }
  }
  std::printf("[ numpy    ] %d draws identical to RandomState\n", compared);
  EXPECT_GT(compared, 5000);
}

TEST(NumpyRandom, KnownValuesWithoutPython) {
  // np.random.RandomState(12345): rand(), randint(2), randint(1, 9), randint(0, 2**40 + 3)
  NumpyRandom r(12345);
  EXPECT_EQ(r.rand(), 0.9296160928171479);
  EXPECT_EQ(r.randint(2), 1);
  EXPECT_EQ(r.randint(1, 9), 2);
  EXPECT_EQ(r.randint(0, (int64_t{1} << 40) + 3), 128661371649);
  EXPECT_EQ(r.randint(7, 8), 7);  // a single value draws nothing: the next draw is numpy's next
  EXPECT_EQ(r.randint(-5, int64_t{1} << 62), 2825618696917621385);
}

// ---------------------------------------------------------------- games against minatar

struct Step {
  int action, reward;
  bool terminal;
  std::string frame;
};
struct Episode {
  std::string reset_frame;
  std::vector<Step> steps;
};
struct RefRun {
  bool minimal = false, ramping = true;
  double sticky = 0.1;
  uint64_t seed = 0;
  std::vector<Episode> episodes;
};

class MinAtarReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    runs_ = new std::map<std::string, std::vector<RefRun>>;
    minimal_sets_ = new std::map<std::string, std::vector<int>>;
    std::istringstream in(run_reference("traj"));
    std::string game;
    for (std::string line; std::getline(in, line);) {
      std::istringstream ls(line);
      std::string op;
      ls >> op;
      if (op == "actions") {
        ls >> game;
        auto& set = (*minimal_sets_)[game];
        for (int a; ls >> a;) set.push_back(a);
      } else if (op == "run") {
        RefRun run;
        std::string sticky;
        int minimal, ramping, episodes;
        ls >> game >> minimal >> sticky >> ramping >> run.seed >> episodes;
        run.minimal = minimal;
        run.ramping = ramping;
        run.sticky = std::strtod(sticky.c_str(), nullptr);
        (*runs_)[game].push_back(run);
      } else if (op == "reset") {
        (*runs_)[game].back().episodes.push_back({});
        ls >> (*runs_)[game].back().episodes.back().reset_frame;
      } else if (op == "step") {
        Step s;
        int terminal;
        ls >> s.action >> s.reward >> terminal >> s.frame;
        s.terminal = terminal;
        (*runs_)[game].back().episodes.back().steps.push_back(s);
      }
    }
  }
  static void TearDownTestSuite() {
    delete runs_;
    delete minimal_sets_;
    runs_ = nullptr;
    minimal_sets_ = nullptr;
  }

  // Replays every reference run of one game; returns the number of steps compared.
  static int replay(const std::string& game) {
    const auto it = runs_->find(game);
    if (it == runs_->end()) {
      ADD_FAILURE() << "no reference runs for " << game;
      return 0;
    }
    int compared = 0;
    for (const RefRun& run : it->second) {
      EnvOptions o;
      o.minimal_action_set = run.minimal;
      o.sticky_action_prob = static_cast<float>(run.sticky);
      o.difficulty_ramping = run.ramping;
      auto env = make(kGames.at(game), o);
      env->seed(run.seed);
      const std::string where =
          game + " seed " + std::to_string(run.seed) + " minimal " + std::to_string(run.minimal) +
          " sticky " + std::to_string(run.sticky) + " ramping " + std::to_string(run.ramping);
      bool ok = true;
      for (size_t e = 0; e < run.episodes.size() && ok; ++e) {
        const Episode& ep = run.episodes[e];
        env->reset();
        std::string frame = frame_hex(*env);
        if (frame != ep.reset_frame) {
          ADD_FAILURE() << where << " episode " << e << ": reset frame differs at "
                        << first_difference(frame, ep.reset_frame);
          ok = false;
        }
        for (size_t t = 0; t < ep.steps.size() && ok; ++t) {
          const Step& s = ep.steps[t];
          const auto r = env->step(s.action);
          frame = frame_hex(*env);
          ++compared;
          if (r.reward != static_cast<float>(s.reward) || r.terminated != s.terminal ||
              r.truncated || frame != s.frame) {
            ADD_FAILURE() << where << " episode " << e << " step " << t << ": reward " << r.reward
                          << " vs " << s.reward << ", terminated " << r.terminated << " vs "
                          << s.terminal << ", frame "
                          << (frame == s.frame ? "same" : first_difference(frame, s.frame));
            ok = false;  // later steps of this run would only repeat the divergence
          }
        }
      }
    }
    std::printf("[ minatar  ] %s: %d steps identical to minatar\n", game.c_str(), compared);
    return compared;
  }

  static std::map<std::string, std::vector<RefRun>>* runs_;
  static std::map<std::string, std::vector<int>>* minimal_sets_;
};
std::map<std::string, std::vector<RefRun>>* MinAtarReference::runs_ = nullptr;
std::map<std::string, std::vector<int>>* MinAtarReference::minimal_sets_ = nullptr;

TEST_F(MinAtarReference, MinimalActionSets) {
  SKIP_WITHOUT_PYTHON();
  ASSERT_EQ(minimal_sets_->size(), kGames.size());
  for (const auto& [game, name] : kGames) {
    EnvOptions o;
    o.minimal_action_set = true;
    auto env = make(name, o);
    const auto& set = dynamic_cast<stoch::rl::minatar::MinAtarEnv&>(*env).action_set();
    EXPECT_EQ(set, minimal_sets_->at(game)) << game;
    EXPECT_EQ(env->num_actions(), static_cast<int>(set.size()));
  }
}

TEST_F(MinAtarReference, Asterix) {
  SKIP_WITHOUT_PYTHON();
  EXPECT_GT(replay("asterix"), 5000);
}
TEST_F(MinAtarReference, Breakout) {
  SKIP_WITHOUT_PYTHON();
  EXPECT_GT(replay("breakout"), 5000);
}
TEST_F(MinAtarReference, Freeway) {
  SKIP_WITHOUT_PYTHON();
  EXPECT_GT(replay("freeway"), 5000);
}
TEST_F(MinAtarReference, Seaquest) {
  SKIP_WITHOUT_PYTHON();
  EXPECT_GT(replay("seaquest"), 5000);
}
TEST_F(MinAtarReference, SpaceInvaders) {
  SKIP_WITHOUT_PYTHON();
  EXPECT_GT(replay("space_invaders"), 5000);
}

// ---------------------------------------------------------------- without the reference

struct Trace {
  std::vector<std::string> frames;
  std::vector<float> rewards;
  std::vector<int> flags;
  bool operator==(const Trace& o) const {
    return frames == o.frames && rewards == o.rewards && flags == o.flags;
  }
};

// Plays n random actions (the same ones for the same action_seed), resetting at episode ends.
Trace play(Env& env, int n, uint32_t action_seed) {
  std::mt19937 g(action_seed);
  Trace t;
  for (int i = 0; i < n; ++i) {
    const auto r = env.step(static_cast<int>(g() % env.num_actions()));
    t.frames.push_back(frame_hex(env));
    t.rewards.push_back(r.reward);
    t.flags.push_back(r.terminated * 2 + r.truncated);
    if (r.terminated || r.truncated) env.reset();
  }
  return t;
}

TEST(MinAtar, ShapesAndRegistry) {
  const std::map<std::string, int> channels = {
      {"asterix", 4}, {"breakout", 4}, {"freeway", 7}, {"seaquest", 10}, {"space_invaders", 6}};
  for (const auto& [game, name] : kGames) {
    auto env = make(name);
    EXPECT_EQ(env->observation_shape(), (std::vector<int64_t>{channels.at(game), 10, 10}));
    EXPECT_TRUE(env->binary_observation());
    EXPECT_EQ(env->num_actions(), 6);
    EXPECT_THROW(env->step(6), std::out_of_range);
    EXPECT_THROW(env->step(-1), std::out_of_range);
  }
}

TEST(MinAtar, StickyProbabilityIsThePythonFloat) {
  // minatar compares rand() with the Python float 0.1, not with float(0.1f) widened to double.
  auto sticky_of = [](float p) {
    EnvOptions o;
    o.sticky_action_prob = p;
    auto env = make("MinAtar/Breakout", o);
    return dynamic_cast<stoch::rl::minatar::MinAtarEnv&>(*env).sticky_action_prob();
  };
  EXPECT_EQ(sticky_of(-1), 0.1);
  EXPECT_EQ(sticky_of(0.1f), 0.1);
  EXPECT_EQ(sticky_of(0.25f), 0.25);
  EXPECT_EQ(sticky_of(0.0f), 0.0);
  EXPECT_EQ(sticky_of(1.0f / 3), 0.33333334);
}

TEST(MinAtar, SameSeedSameGame) {
  for (const auto& [game, name] : kGames) {
    auto a = make(name), b = make(name);
    a->seed(77);
    b->seed(77 + (uint64_t{5} << 32));  // only the low 32 bits seed RandomState
    a->reset();
    b->reset();
    EXPECT_TRUE(play(*a, 3000, 1) == play(*b, 3000, 1)) << game;
    auto c = make(name);
    c->seed(78);
    c->reset();
    a->seed(77);
    a->reset();
    EXPECT_FALSE(play(*a, 3000, 1) == play(*c, 3000, 1)) << game;
  }
}

TEST(MinAtar, SaveLoadContinuesExactly) {
  for (const auto& [game, name] : kGames) {
    EnvOptions o;
    o.max_episode_steps = 700;
    auto env = make(name, o);
    env->seed(5);
    env->reset();
    play(*env, 1234, 2);
    const std::string state = env->save_state();
    const Trace expected = play(*env, 2000, 3);

    auto other = make(name, o);
    other->seed(99);
    other->reset();
    play(*other, 321, 4);
    other->load_state(state);
    EXPECT_EQ(other->save_state(), state) << game;
    EXPECT_TRUE(play(*other, 2000, 3) == expected) << game;
  }
}

// Found by fuzzing (tests/fuzz/fuzz_env_state.cpp): a Seaquest state whose lists held a mover
// below the grid loaded, and rendering it wrote past the observation. Right after reset every
// list is empty, so the state ends with the divers' count; one diver is appended to it.
TEST(MinAtar, SeaquestRefusesMoversOffTheGrid) {
  auto env = make("MinAtar/Seaquest");
  env->seed(2);
  env->reset();
  const std::string state = env->save_state();
  const auto with_diver = [&](int32_t x, int32_t y, int32_t heading, int32_t timer) {
    std::string s = state;
    const uint32_t one = 1;
    std::memcpy(&s[s.size() - 4], &one, 4);
    for (const int32_t v : {x, y, heading, timer}) s.append(reinterpret_cast<const char*>(&v), 4);
    return s;
  };
  auto target = make("MinAtar/Seaquest");
  EXPECT_NO_THROW(target->load_state(with_diver(0, 5, 1, 3)));  // a diver the game could hold
  std::vector<float> frame(frame_size(*target));
  target->observe(frame.data());
  for (const auto& bad : {with_diver(3, 50, 1, 3), with_diver(3, -2, 1, 3), with_diver(30, 5, 1, 3),
                          with_diver(3, 5, 7, 3), with_diver(3, 5, 1, -1)})
    EXPECT_THROW(target->load_state(bad), std::runtime_error);
}

// minatar 1.0.15 lowers the divers' count after paying for six (to -1), and again at every later
// surfacing without divers; the game goes on. Seaquest refused to load such a state, so a
// checkpoint taken then could not be resumed or evaluated. These actions (found with minatar's
// own game, seed 42, default options) surface with six divers at step 400; every state on the way
// is saved and loaded into a fresh game, which then plays on.
TEST(MinAtar, SeaquestLoadsTheNegativeDiverCountsTheGameReaches) {
  const std::string actions =
      "44444545555552524132444441500552234333305525530053350555555402222150000544444355"
      "54255555552444255455322215000050332421452444411131111215052352222244445242424242"
      "42424242424242424242444525000052224242424201243424444344111222224242424242424222"
      "42224242444404244350000222424222424242424442422222222444424242424242424242444222"
      "42444242424324242424242424242442244444242444242215044242424242042424222424242422"
      "444445444350022211523005000111524555524151005051505433334243234";
  auto env = make("MinAtar/Seaquest");
  env->seed(42);
  env->reset();
  float best_reward = 0;
  for (size_t t = 0; t < actions.size(); ++t) {
    const std::string state = env->save_state();
    auto fresh = make("MinAtar/Seaquest");
    ASSERT_NO_THROW(fresh->load_state(state)) << "step " << t;
    EXPECT_EQ(fresh->save_state(), state) << "step " << t;
    env = std::move(fresh);
    const auto r = env->step(actions[t] - '0');
    best_reward = std::max(best_reward, r.reward);
    if (r.terminated) break;
  }
  EXPECT_GT(best_reward, 1.0f) << "the actions no longer surface with six divers";
}

TEST(MinAtar, LoadRejectsMalformedStates) {
  for (const auto& [game, name] : kGames) {
    auto env = make(name);
    env->seed(3);
    env->reset();
    play(*env, 300, 5);
    const std::string state = env->save_state();
    auto target = make(name);
    const std::string before = target->save_state();
    for (size_t n = 0; n < state.size(); ++n)
      EXPECT_THROW(target->load_state(state.substr(0, n)), std::runtime_error) << game << " " << n;
    EXPECT_THROW(target->load_state(state + '\0'), std::runtime_error) << game;
    EXPECT_EQ(target->save_state(), before) << game << ": a failed load changed the env";
    for (const auto& [other_game, other_name] : kGames) {
      if (other_game == game) continue;
      EXPECT_THROW(target->load_state(make(other_name)->save_state()), std::runtime_error)
          << game << " accepted " << other_game;
    }
  }
}

TEST(MinAtar, TruncatesAtMaxEpisodeSteps) {
  EnvOptions o;
  o.max_episode_steps = 50;
  auto env = make("MinAtar/Freeway", o);  // Freeway lasts 2500 steps, so only the limit ends it
  env->reset();
  for (int t = 1; t <= 50; ++t) {
    const auto r = env->step(0);
    EXPECT_FALSE(r.terminated);
    EXPECT_EQ(r.truncated, t == 50) << t;
  }
  env->reset();
  EXPECT_FALSE(env->step(0).truncated);
}

TEST(MinAtar, NoRewardAfterTermination) {
  EnvOptions o;
  o.sticky_action_prob = 0;
  auto env = make("MinAtar/Breakout", o);
  env->reset();
  bool terminated = false;
  for (int t = 0; t < 100 && !terminated; ++t) terminated = env->step(0).terminated;
  ASSERT_TRUE(terminated);  // a paddle that never moves misses the ball
  const auto r = env->step(1);
  EXPECT_TRUE(r.terminated);
  EXPECT_EQ(r.reward, 0.0f);
}

}  // namespace
