// VectorEnv (auto-reset, final observations, seeding, resume) and ReplayBuffer (n-step windows
// at episode ends and ring wrap-around, bit packing, uniform and prioritised sampling, resume).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/registry.h"
#include "core/rng.h"
#include "rl/replay_buffer.h"
#include "rl/state_io.h"
#include "rl/vector_env.h"

namespace stoch::rl {
namespace {

// ---------------------------------------------------------------------------------------------
// A counter environment. Observation: (episode id, t, episodes started). Each reset draws from
// the seeded stream an id, a length in [1, 6] and whether the episode ends by termination or by
// truncation, so every quantity VectorEnv reports can be predicted.
class CounterEnv : public Env {
 public:
  std::vector<int64_t> observation_shape() const override { return {3}; }
  int num_actions() const override { return 3; }
  // action + t / 4 with t < 6.
  RewardRange reward_range() const override { return {0, 3.5}; }
  int time_limit() const override { return 6; }
  void seed(uint64_t seed) override {
    rng_ = Rng(seed);
    episodes_ = 0;
  }
  void reset() override {
    id_ = static_cast<int64_t>(rng_.below(1 << 20));
    length_ = 1 + static_cast<int64_t>(rng_.below(6));
    truncates_ = static_cast<int64_t>(rng_.below(2));
    t_ = 0;
    ++episodes_;
  }
  void observe(float* out) const override {
    out[0] = static_cast<float>(id_);
    out[1] = static_cast<float>(t_);
    out[2] = static_cast<float>(episodes_);
  }
  StepResult step(int action) override {
    ++t_;
    StepResult r;
    r.reward = static_cast<float>(action) + 0.25f * static_cast<float>(t_);
    const bool end = t_ == length_;
    r.terminated = end && !truncates_;
    r.truncated = end && truncates_;
    return r;
  }
  std::string save_state() const override {
    std::array<uint64_t, 4> words;
    std::memcpy(words.data(), &rng_, sizeof(rng_));
    StateWriter w;
    w.put(words).put(id_).put(t_).put(length_).put(truncates_).put(episodes_);
    return std::move(w).str();
  }
  void load_state(const std::string& bytes) override {
    StateReader r(bytes);
    const auto words = r.get<std::array<uint64_t, 4>>();
    std::memcpy(static_cast<void*>(&rng_), words.data(), sizeof(rng_));  // trivially copyable
    id_ = r.get<int64_t>();
    t_ = r.get<int64_t>();
    length_ = r.get<int64_t>();
    truncates_ = r.get<int64_t>();
    episodes_ = r.get<int64_t>();
    r.expect_end();
  }

 private:
  static_assert(sizeof(Rng) == 4 * sizeof(uint64_t), "Rng is four words");
  Rng rng_{0};
  int64_t id_ = 0, t_ = 0, length_ = 1, truncates_ = 0, episodes_ = 0;
};

const bool kCounterRegistered = registry<EnvEntry>().add(
    "Test/Counter", {"counter environment for the replay tests",
                     [](const EnvOptions&) { return std::make_unique<CounterEnv>(); }});

std::vector<int> random_actions(Rng& rng, int n) {
  std::vector<int> a(n);
  for (int& x : a) x = static_cast<int>(rng.below(3));
  return a;
}

TEST(VectorEnv, MatchesIndependentlySeededEnvsThroughAutoResets) {
  ASSERT_TRUE(kCounterRegistered);
  const int num_envs = 4;
  const uint64_t seed = 7;
  VectorEnv venv("Test/Counter", {}, num_envs, seed);
  ASSERT_EQ(venv.obs_size(), 3);
  ASSERT_EQ(venv.num_actions(), 3);

  // Reference: env i seeded with mix_seed(seed, i), stepped by hand.
  std::vector<CounterEnv> ref(num_envs);
  std::vector<double> ref_return(num_envs, 0.0);
  std::vector<int64_t> ref_length(num_envs, 0);
  for (int i = 0; i < num_envs; ++i) {
    ref[i].seed(mix_seed(seed, i));
    ref[i].reset();
  }
  float expect[3];
  for (int i = 0; i < num_envs; ++i) {
    ref[i].observe(expect);
    ASSERT_EQ(0, std::memcmp(expect, venv.observations() + 3 * i, sizeof(expect)));
  }

  Rng rng(1);
  int terminations = 0, truncations = 0;
  for (int step = 0; step < 300; ++step) {
    const std::vector<float> before(venv.observations(), venv.observations() + 3 * num_envs);
    const std::vector<int> actions = random_actions(rng, num_envs);
    const std::vector<EpisodeEnd> ended = venv.step(actions.data());
    ASSERT_EQ(0, std::memcmp(before.data(), venv.acted_observations(), before.size() * 4));

    size_t next_end = 0;
    for (int i = 0; i < num_envs; ++i) {
      const StepResult r = ref[i].step(actions[i]);
      ref_return[i] += r.reward;
      ref_length[i] += 1;
      ASSERT_EQ(venv.rewards()[i], r.reward);
      ASSERT_EQ(venv.terminated()[i], r.terminated);
      ASSERT_EQ(venv.truncated()[i], r.truncated);
      ref[i].observe(expect);
      const float* final_obs = venv.next_observations() + 3 * i;
      const float* obs = venv.observations() + 3 * i;
      ASSERT_EQ(0, std::memcmp(expect, final_obs, sizeof(expect))) << "env " << i;
      if (r.terminated || r.truncated) {
        terminations += r.terminated;
        truncations += r.truncated;
        ASSERT_LT(next_end, ended.size());
        const EpisodeEnd& e = ended[next_end++];
        EXPECT_EQ(e.env, i);
        EXPECT_DOUBLE_EQ(e.episode_return, ref_return[i]);
        EXPECT_EQ(e.length, ref_length[i]);
        EXPECT_EQ(e.truncated, r.truncated);
        // The final observation is the last state of the old episode; the one to act on is the
        // first of the next.
        EXPECT_EQ(final_obs[1], static_cast<float>(ref_length[i]));
        EXPECT_EQ(obs[1], 0.0f);
        EXPECT_EQ(obs[2], final_obs[2] + 1.0f);
        ref[i].reset();
        ref_return[i] = 0.0;
        ref_length[i] = 0;
        ref[i].observe(expect);
        ASSERT_EQ(0, std::memcmp(expect, obs, sizeof(expect)));
      } else {
        ASSERT_EQ(0, std::memcmp(final_obs, obs, sizeof(expect)));
      }
      EXPECT_DOUBLE_EQ(venv.running_returns()[i], ref_return[i]);
      EXPECT_EQ(venv.running_lengths()[i], ref_length[i]);
    }
    ASSERT_EQ(next_end, ended.size());
  }
  EXPECT_GT(terminations, 20);
  EXPECT_GT(truncations, 20);
}

TEST(VectorEnv, SeedingIsDeterministicAndStreamsAreIndependent) {
  VectorEnv a("Test/Counter", {}, 5, 42), b("Test/Counter", {}, 5, 42);
  VectorEnv c("Test/Counter", {}, 5, 43);
  // With seed + i, env 1 under seed 42 would replay env 0 under seed 43.
  EXPECT_NE(a.observations()[3 * 1], c.observations()[0]);
  std::set<float> ids;
  for (int i = 0; i < 5; ++i) ids.insert(a.observations()[3 * i]);
  EXPECT_EQ(ids.size(), 5u);

  Rng rng(3);
  bool differs = false;
  for (int step = 0; step < 100; ++step) {
    const std::vector<int> actions = random_actions(rng, 5);
    a.step(actions.data());
    b.step(actions.data());
    c.step(actions.data());
    ASSERT_EQ(0, std::memcmp(a.observations(), b.observations(), 15 * sizeof(float)));
    ASSERT_EQ(0, std::memcmp(a.next_observations(), b.next_observations(), 15 * sizeof(float)));
    differs |= std::memcmp(a.observations(), c.observations(), 15 * sizeof(float)) != 0;
  }
  EXPECT_TRUE(differs);
}

TEST(VectorEnv, SaveLoadResumesExactly) {
  VectorEnv venv("Test/Counter", {}, 3, 11);
  Rng rng(5);
  for (int step = 0; step < 40; ++step) venv.step(random_actions(rng, 3).data());
  const std::string saved = venv.save_state();
  Rng rng_copy = rng;

  struct Trace {
    std::vector<float> obs, next, rewards, returns;
    std::vector<int> episodes;
  } original, resumed;
  auto record = [](VectorEnv& v, Rng& r, Trace& t) {
    for (int step = 0; step < 60; ++step) {
      for (const EpisodeEnd& e : v.step(random_actions(r, 3).data())) {
        t.episodes.push_back(e.env);
        t.episodes.push_back(static_cast<int>(e.length));
        t.returns.push_back(static_cast<float>(e.episode_return));
      }
      t.obs.insert(t.obs.end(), v.observations(), v.observations() + 9);
      t.next.insert(t.next.end(), v.next_observations(), v.next_observations() + 9);
      t.rewards.insert(t.rewards.end(), v.rewards(), v.rewards() + 3);
      t.returns.insert(t.returns.end(), v.running_returns(), v.running_returns() + 3);
    }
  };
  record(venv, rng, original);

  VectorEnv other("Test/Counter", {}, 3, 999);
  other.load_state(saved);
  record(other, rng_copy, resumed);
  EXPECT_EQ(original.obs, resumed.obs);
  EXPECT_EQ(original.next, resumed.next);
  EXPECT_EQ(original.rewards, resumed.rewards);
  EXPECT_EQ(original.returns, resumed.returns);
  EXPECT_EQ(original.episodes, resumed.episodes);
  EXPECT_FALSE(original.episodes.empty());

  VectorEnv fewer("Test/Counter", {}, 2, 1);
  EXPECT_THROW(fewer.load_state(saved), InputError);
  EXPECT_THROW(other.load_state(saved.substr(0, saved.size() - 3)), InputError);
}

TEST(VectorEnv, UnknownNameIsAnInputError) {
  EXPECT_THROW(VectorEnv("Test/Countr", {}, 1, 0), InputError);
}

// ---------------------------------------------------------------------------------------------
// Replay. Observations encode (row, env) so a sample names the transition it came from; a
// brute-force history of every row ever added gives the expected n-step quantities.

struct Transition {
  std::vector<float> obs, next_obs;
  int action = 0;
  float reward = 0;
  bool terminated = false, truncated = false;
};

constexpr int kIdBits = 21;  // binary encoding: 16 bits of row, 4 of env, 1 marker

void encode(int64_t row, int env, bool next, bool binary, Rng& rng, float* x, int64_t d) {
  if (!binary) {
    x[0] = static_cast<float>(row);
    x[1] = static_cast<float>(env);
    x[2] = next ? 1.0f : 0.0f;
    for (int64_t j = 3; j < d; ++j) x[j] = static_cast<float>(rng.normal());
    return;
  }
  const uint64_t code = static_cast<uint64_t>(row) | static_cast<uint64_t>(env) << 16 |
                        static_cast<uint64_t>(next) << 20;
  for (int64_t j = 0; j < d; ++j) {
    x[j] = j < kIdBits ? static_cast<float>((code >> j) & 1) : static_cast<float>(rng.below(2));
  }
}

std::pair<int64_t, int> decode(const float* x, bool binary) {
  if (!binary) return {static_cast<int64_t>(x[0]), static_cast<int>(x[1])};
  uint64_t code = 0;
  for (int j = 0; j < kIdBits; ++j) code |= static_cast<uint64_t>(x[j] != 0) << j;
  return {static_cast<int64_t>(code & 0xFFFF), static_cast<int>((code >> 16) & 0xF)};
}

// Generates random rows of transitions (random rewards, terminations and truncations) and
// remembers all of them.
class Feeder {
 public:
  Feeder(const ReplayOptions& opt, uint64_t seed) : opt_(opt), rng_(seed) {}

  void next_row() {
    const int envs = opt_.num_envs;
    const int64_t d = opt_.obs_size;
    const int64_t row = static_cast<int64_t>(rows.size());
    obs_.assign(envs * d, 0);
    next_.assign(envs * d, 0);
    actions_.assign(envs, 0);
    rewards_.assign(envs, 0);
    term_.assign(envs, 0);
    trunc_.assign(envs, 0);
    std::vector<Transition> r(envs);
    for (int e = 0; e < envs; ++e) {
      encode(row, e, false, opt_.binary, rng_, &obs_[e * d], d);
      encode(row, e, true, opt_.binary, rng_, &next_[e * d], d);
      actions_[e] = static_cast<int>(rng_.below(6));
      rewards_[e] = static_cast<float>(rng_.normal());
      const double u = rng_.uniform();
      term_[e] = u < 0.12;
      trunc_[e] = u >= 0.12 && u < 0.2;
      r[e] = {std::vector<float>(&obs_[e * d], &obs_[e * d] + d),
              std::vector<float>(&next_[e * d], &next_[e * d] + d),
              actions_[e],
              rewards_[e],
              term_[e] != 0,
              trunc_[e] != 0};
    }
    rows.push_back(std::move(r));
  }
  void add_last(ReplayBuffer& b) const {
    b.add(obs_.data(), actions_.data(), rewards_.data(), next_.data(), term_.data(), trunc_.data());
  }
  void add_row(ReplayBuffer& b) {
    next_row();
    add_last(b);
  }

  std::vector<std::vector<Transition>> rows;  // rows[row][env]

 private:
  ReplayOptions opt_;
  Rng rng_;
  std::vector<float> obs_, next_, rewards_;
  std::vector<int> actions_;
  std::vector<uint8_t> term_, trunc_;
};

// Checks sample i against the brute-force n-step window over the history.
void check_sample(const ReplayBuffer& buffer, const Feeder& feeder, ReplaySampleArrays& s, int i) {
  const ReplayOptions& opt = buffer.options();
  const int64_t d = opt.obs_size;
  const auto [row, env] = decode(&s.obs[i * d], opt.binary);
  const int64_t added = buffer.rows_added();
  const int64_t rows = buffer.capacity() / opt.num_envs;
  // Held (not overwritten) and its whole window written.
  ASSERT_GE(row, std::max<int64_t>(0, added - rows));
  ASSERT_LE(row + opt.n_step - 1, added - 1);
  ASSERT_EQ(s.ids[i], row * opt.num_envs + env);

  const Transition& first = feeder.rows[row][env];
  ASSERT_EQ(0, std::memcmp(first.obs.data(), &s.obs[i * d], d * sizeof(float)));
  EXPECT_EQ(s.actions[i], first.action);
  double ret = 0.0, g = 1.0;
  const Transition* last = nullptr;
  for (int k = 0; k < opt.n_step; ++k) {
    last = &feeder.rows[row + k][env];
    ret += g * last->reward;
    g *= opt.gamma;
    if (last->terminated || last->truncated) break;
  }
  const double discount = last->terminated ? 0.0 : g;
  EXPECT_NEAR(s.returns[i], ret, 1e-5 * (1 + std::fabs(ret)));
  EXPECT_NEAR(s.discounts[i], discount, 1e-7);
  ASSERT_EQ(0, std::memcmp(last->next_obs.data(), &s.next_obs[i * d], d * sizeof(float)))
      << "bootstrap observation of row " << row << " env " << env;
  if (opt.prioritized) {
    EXPECT_GT(s.weights[i], 0.0f);
    EXPECT_LE(s.weights[i], 1.0f + 1e-6f);
  } else {
    EXPECT_EQ(s.weights[i], 1.0f);
  }
}

struct WindowCase {
  bool binary;
  int n_step;
  bool prioritized;
};

void PrintTo(const WindowCase& c, std::ostream* os) {
  *os << (c.binary ? "binary" : "float") << " n=" << c.n_step
      << (c.prioritized ? " prioritized" : " uniform");
}

class ReplayWindows : public ::testing::TestWithParam<WindowCase> {};

TEST_P(ReplayWindows, NStepSamplesMatchBruteForceThroughWrapAround) {
  const WindowCase c = GetParam();
  ReplayOptions opt;
  opt.num_envs = 3;
  opt.capacity = 3 * 13 + 2;  // 13 rows per env; the remainder is dropped
  opt.obs_size = c.binary ? 70 : 5;
  opt.binary = c.binary;
  opt.n_step = c.n_step;
  opt.gamma = 0.9;
  opt.prioritized = c.prioritized;
  ReplayBuffer buffer(opt);
  ASSERT_EQ(buffer.capacity(), 39);

  Feeder feeder(opt, 17);
  Rng rng(23);
  const int batch = 16;
  ReplaySampleArrays s(batch, opt.obs_size);
  std::vector<float> td(batch);
  for (int added = 1; added <= 60; ++added) {
    feeder.add_row(buffer);
    ASSERT_EQ(buffer.size(), 3 * std::min(added, 13));
    ASSERT_EQ(buffer.num_sampleable(), 3 * std::max(0, std::min(added, 13) - c.n_step + 1));
    if (buffer.num_sampleable() == 0) {
      EXPECT_THROW(buffer.sample(batch, rng, s.view()), std::logic_error);
      continue;
    }
    buffer.sample(batch, rng, s.view());
    for (int i = 0; i < batch; ++i) check_sample(buffer, feeder, s, i);
    if (c.prioritized) {
      for (float& x : td) x = static_cast<float>(rng.normal());
      buffer.update_priorities(s.ids.data(), td.data(), batch);
    }
  }

  // Every sampleable transition is reachable, and nothing else is.
  std::set<int64_t> seen;
  for (int k = 0; k < 400; ++k) {
    buffer.sample(batch, rng, s.view());
    for (int i = 0; i < batch; ++i) {
      check_sample(buffer, feeder, s, i);
      seen.insert(s.ids[i]);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), buffer.num_sampleable());
}

INSTANTIATE_TEST_SUITE_P(Cases, ReplayWindows,
                         ::testing::Values(WindowCase{false, 1, false}, WindowCase{false, 3, false},
                                           WindowCase{true, 3, false}, WindowCase{false, 5, true},
                                           WindowCase{true, 2, true}, WindowCase{true, 1, true},
                                           WindowCase{false, 13, false}));

TEST(Replay, WindowsStopAtEpisodeEndsAndTruncationBootstrapsFromFinalObservation) {
  // One env, n = 3, a hand-written episode: r = 1, 2, 4 (truncated), 8, 16 (terminated), 32...
  ReplayOptions opt;
  opt.num_envs = 1;
  opt.capacity = 10;
  opt.obs_size = 1;
  opt.n_step = 3;
  opt.gamma = 0.5;
  ReplayBuffer buffer(opt);
  const float rewards[] = {1, 2, 4, 8, 16, 32, 64};
  const uint8_t term[] = {0, 0, 0, 0, 1, 0, 0};
  const uint8_t trunc[] = {0, 0, 1, 0, 0, 0, 0};
  for (int t = 0; t < 7; ++t) {
    const float obs = static_cast<float>(t), next = 100.0f + t;
    const int action = t;
    buffer.add(&obs, &action, &rewards[t], &next, &term[t], &trunc[t]);
  }
  ASSERT_EQ(buffer.num_sampleable(), 5);  // rows 5 and 6 wait for their windows
  // Sample until each start has been seen; expected (return, bootstrap obs, discount).
  const std::map<int, std::array<float, 3>> expect = {
      {0, {1 + 0.5f * 2 + 0.25f * 4, 102, 0.125f}},  // stops at the truncation, bootstraps
      {1, {2 + 0.5f * 4, 102, 0.25f}},
      {2, {4, 102, 0.5f}},
      {3, {8 + 0.5f * 16, 104, 0.0f}},  // termination: no bootstrap
      {4, {16, 104, 0.0f}},
  };
  Rng rng(9);
  ReplaySampleArrays s(64, 1);
  buffer.sample(64, rng, s.view());
  std::set<int> seen;
  for (int i = 0; i < 64; ++i) {
    const int t = static_cast<int>(s.obs[i]);
    ASSERT_TRUE(expect.count(t)) << t;
    seen.insert(t);
    EXPECT_FLOAT_EQ(s.returns[i], expect.at(t)[0]);
    EXPECT_EQ(s.next_obs[i], expect.at(t)[1]);
    EXPECT_FLOAT_EQ(s.discounts[i], expect.at(t)[2]);
    EXPECT_EQ(s.actions[i], t);
  }
  EXPECT_EQ(seen.size(), 5u);
}

TEST(Replay, BinaryObservationsRoundTripThroughBits) {
  for (int64_t d : {400, 1000, 77}) {  // MinAtar 4 and 10 channels; a ragged size
    ReplayOptions opt;
    opt.num_envs = 2;
    opt.capacity = 16;
    opt.obs_size = d;
    opt.binary = true;
    ReplayBuffer buffer(opt);
    Rng data(d);
    std::vector<std::vector<float>> obs(16), next(16);
    for (int row = 0; row < 8; ++row) {
      std::vector<float> o(2 * d), nx(2 * d);
      for (float& x : o) x = data.uniform() < 0.3 ? 1.0f : 0.0f;
      for (float& x : nx) x = data.uniform() < 0.3 ? 1.0f : 0.0f;
      const int actions[2] = {0, 1};
      const float rewards[2] = {0, 0};
      const uint8_t zero[2] = {0, 0};
      buffer.add(o.data(), actions, rewards, nx.data(), zero, zero);
      for (int e = 0; e < 2; ++e) {
        obs[row * 2 + e].assign(o.begin() + e * d, o.begin() + (e + 1) * d);
        next[row * 2 + e].assign(nx.begin() + e * d, nx.begin() + (e + 1) * d);
      }
    }
    Rng rng(4);
    ReplaySampleArrays s(128, d);
    buffer.sample(128, rng, s.view());
    for (int i = 0; i < 128; ++i) {
      const int64_t id = s.ids[i];
      ASSERT_TRUE(std::equal(obs[id].begin(), obs[id].end(), &s.obs[i * d])) << "d " << d;
      ASSERT_TRUE(std::equal(next[id].begin(), next[id].end(), &s.next_obs[i * d]));
    }

    // A value other than 0 or 1 is refused and leaves the buffer as it was.
    std::vector<float> bad(2 * d, 0.0f);
    bad[d + 3] = 0.5f;
    const int actions[2] = {0, 0};
    const float rewards[2] = {0, 0};
    const uint8_t zero[2] = {0, 0};
    EXPECT_THROW(buffer.add(bad.data(), actions, rewards, bad.data(), zero, zero),
                 std::invalid_argument);
    EXPECT_EQ(buffer.rows_added(), 8);
  }
}

TEST(Replay, MinAtarCapacityFitsWellUnder100MB) {
  ReplayOptions opt;
  opt.capacity = 100000;
  opt.obs_size = 10 * 10 * 10;
  opt.binary = true;
  opt.num_envs = 64;
  opt.n_step = 3;
  opt.prioritized = true;
  ReplayBuffer buffer(opt);
  EXPECT_EQ(buffer.capacity(), 100000 / 64 * 64);
  EXPECT_LT(buffer.memory_bytes(), 40ll << 20);
}

// Pearson's statistic; for k bins it has mean k - 1 and s.d. sqrt(2 (k - 1)) when the
// expectation is right.
double chi_square(const std::vector<double>& counts, const std::vector<double>& expected) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    chi2 += (counts[i] - expected[i]) * (counts[i] - expected[i]) / expected[i];
  }
  return chi2;
}

double chi_square_bound(size_t bins) {
  const double df = static_cast<double>(bins - 1);
  return df + 6.0 * std::sqrt(2.0 * df);
}

TEST(Replay, UniformSamplingIsUniformOverHeldTransitions) {
  ReplayOptions opt;
  opt.num_envs = 2;
  opt.capacity = 60;
  opt.obs_size = 3;
  ReplayBuffer buffer(opt);
  Feeder feeder(opt, 1);
  for (int row = 0; row < 45; ++row) feeder.add_row(buffer);  // rows 15..44 held

  const int batch = 32, draws = 4000 * batch;
  std::vector<double> counts(60, 0.0);
  Rng rng(77);
  ReplaySampleArrays s(batch, opt.obs_size);
  for (int k = 0; k < draws / batch; ++k) {
    buffer.sample(batch, rng, s.view());
    for (int i = 0; i < batch; ++i) {
      const int64_t id = s.ids[i] - 15 * 2;
      ASSERT_GE(id, 0);
      ASSERT_LT(id, 60);
      counts[id] += 1;
    }
  }
  const std::vector<double> expected(60, draws / 60.0);
  EXPECT_LT(chi_square(counts, expected), chi_square_bound(60));

  // The bound is tight enough to catch a modest bias: one transition drawn 30% too often.
  std::vector<double> biased = expected;
  biased[0] *= 1.3;
  biased[1] -= expected[0] * 0.3;
  EXPECT_GT(chi_square(biased, expected), chi_square_bound(60));
}

TEST(Replay, PrioritisedSamplingFollowsPriorityAndWeightsFollowTheFormula) {
  ReplayOptions opt;
  opt.num_envs = 2;
  opt.capacity = 40;
  opt.obs_size = 3;
  opt.prioritized = true;
  opt.alpha = 0.7;
  opt.beta = 0.5;
  opt.eps = 1e-3;
  ReplayBuffer buffer(opt);
  Feeder feeder(opt, 2);
  for (int row = 0; row < 20; ++row) feeder.add_row(buffer);
  // Before any update every transition has the initial max priority 1.
  EXPECT_DOUBLE_EQ(buffer.total_priority(), 40.0);

  Rng rng(8);
  std::vector<int64_t> ids(40);
  std::vector<float> td(40);
  for (int i = 0; i < 40; ++i) {
    ids[i] = i;
    td[i] = static_cast<float>(3.0 * rng.uniform() * (rng.below(2) ? 1 : -1));
  }
  td[5] = 0.0f;  // only eps keeps it sampleable
  buffer.update_priorities(ids.data(), td.data(), 40);
  std::vector<double> p(40);
  double total = 0, max_td = 0;
  for (int i = 0; i < 40; ++i) {
    p[i] = std::pow(std::fabs(static_cast<double>(td[i])) + opt.eps, opt.alpha);
    total += p[i];
    max_td = std::max(max_td, std::fabs(static_cast<double>(td[i])));
    EXPECT_NEAR(buffer.priority(i), p[i], 1e-12);
  }
  EXPECT_NEAR(buffer.total_priority(), total, 1e-9);

  const int batch = 50, draws = 4000 * batch;
  std::vector<double> counts(40, 0.0);
  ReplaySampleArrays s(batch, opt.obs_size);
  double max_weight = 0;
  for (int i = 0; i < 40; ++i) max_weight = std::max(max_weight, std::pow(40 * p[i] / total, -0.5));
  for (int k = 0; k < draws / batch; ++k) {
    buffer.sample(batch, rng, s.view());
    for (int i = 0; i < batch; ++i) {
      const int64_t id = s.ids[i];
      counts[id] += 1;
      // (N P(i))^-beta normalised by the largest weight over the buffer.
      const double w = std::pow(40 * p[id] / total, -0.5) / max_weight;
      ASSERT_NEAR(s.weights[i], w, 1e-6 * w);
    }
  }
  std::vector<double> expected(40);
  for (int i = 0; i < 40; ++i) expected[i] = draws * p[i] / total;
  EXPECT_LT(chi_square(counts, expected), chi_square_bound(40));
  // Uniform frequencies would fail the same bound.
  EXPECT_GT(chi_square(counts, std::vector<double>(40, draws / 40.0)), chi_square_bound(40));

  // A new row overwrites row 0, which drops out; the new transitions get the max priority,
  // but only once sampleable (n = 1: at once). A stale id from row 0 is ignored.
  const double total_before = buffer.total_priority();
  feeder.add_row(buffer);
  EXPECT_EQ(buffer.priority(0), 0.0);
  EXPECT_EQ(buffer.priority(1), 0.0);
  const double p_new = std::pow(max_td + opt.eps, opt.alpha);
  EXPECT_NEAR(buffer.priority(40), p_new, 1e-12);
  EXPECT_NEAR(buffer.priority(41), p_new, 1e-12);
  EXPECT_NEAR(buffer.total_priority(), total_before - p[0] - p[1] + 2 * p_new, 1e-9);
  const int64_t stale = 0;
  const float big = 100.0f;
  buffer.update_priorities(&stale, &big, 1);
  EXPECT_NEAR(buffer.total_priority(), total_before - p[0] - p[1] + 2 * p_new, 1e-9);
  const float nan = NAN;
  EXPECT_THROW(buffer.update_priorities(&ids[3], &nan, 1), std::invalid_argument);
}

TEST(Replay, PrioritisedNewRowsWaitForTheirWindow) {
  ReplayOptions opt;
  opt.num_envs = 2;
  opt.capacity = 20;
  opt.obs_size = 3;
  opt.n_step = 3;
  opt.prioritized = true;
  ReplayBuffer buffer(opt);
  Feeder feeder(opt, 3);
  for (int row = 0; row < 12; ++row) {
    feeder.add_row(buffer);
    // Rows whose window is incomplete have priority 0 and are not counted.
    const int64_t sampleable = 2 * std::max(0, std::min(row + 1, 10) - 2);
    EXPECT_EQ(buffer.num_sampleable(), sampleable);
    EXPECT_DOUBLE_EQ(buffer.total_priority(), static_cast<double>(sampleable));
    EXPECT_EQ(buffer.priority(2 * row), 0.0);
    if (row >= 2) {
      EXPECT_EQ(buffer.priority(2 * (row - 2)), 1.0);
    }
    // Updates for ids still waiting (the newest n - 1 rows) are ignored.
    const int64_t waiting[4] = {2 * row, 2 * row + 1, 2 * row - 2, 2 * row - 1};
    const float td[4] = {5.0f, 5.0f, 5.0f, 5.0f};
    buffer.update_priorities(waiting, td, row >= 1 ? 4 : 2);
    EXPECT_EQ(buffer.priority(2 * row + 1), 0.0);
    if (row >= 1) {
      EXPECT_EQ(buffer.priority(2 * row - 1), 0.0);
    }
    EXPECT_DOUBLE_EQ(buffer.total_priority(), static_cast<double>(sampleable));
  }
}

TEST(PriorityTree, TotalsMinimaAndSearchAgreeWithBruteForce) {
  const int n = 37;  // not a power of two
  PriorityTree tree(n);
  std::vector<double> leaves(n, 0.0);
  Rng rng(12);
  for (int op = 0; op < 3000; ++op) {
    const int leaf = static_cast<int>(rng.below(n));
    const double p = rng.uniform() < 0.2 ? 0.0 : rng.uniform() * 10;
    tree.set(leaf, p);
    leaves[leaf] = p;
    double total = 0, min_pos = INFINITY;
    for (double x : leaves) {
      total += x;
      if (x > 0) min_pos = std::min(min_pos, x);
    }
    ASSERT_NEAR(tree.total(), total, 1e-9 * (1 + total));
    ASSERT_EQ(tree.min_positive(), min_pos);
    ASSERT_EQ(tree.get(leaf), p);
    if (total <= 0) continue;
    for (int q = 0; q < 5; ++q) {
      const double u = rng.uniform() * tree.total();
      const int64_t found = tree.find(u);
      ASSERT_GE(found, 0);
      ASSERT_LT(found, n);
      ASSERT_GT(leaves[found], 0.0);
      double before = 0;
      for (int64_t j = 0; j < found; ++j) before += leaves[j];
      ASSERT_LE(before, u + 1e-9);
      ASSERT_LT(u, before + leaves[found] + 1e-9);
    }
    // Rounding past the total lands on the last positive leaf, never on a zero one.
    const int64_t last = tree.find(tree.total() * (1 + 1e-12));
    ASSERT_GE(last, 0);
    ASSERT_LT(last, n);
    ASSERT_GT(leaves[last], 0.0);
    for (int64_t j = last + 1; j < n; ++j) ASSERT_EQ(leaves[j], 0.0);
  }
  // Rebuilding from the leaves reproduces the same sums bit for bit.
  PriorityTree rebuilt(n);
  rebuilt.assign(leaves);
  EXPECT_EQ(rebuilt.total(), tree.total());
  EXPECT_EQ(rebuilt.min_positive(), tree.min_positive());
  PriorityTree empty(5);
  EXPECT_EQ(empty.total(), 0.0);
  EXPECT_TRUE(std::isinf(empty.min_positive()));
}

bool same_sample(const ReplaySampleArrays& a, const ReplaySampleArrays& b) {
  return a.obs == b.obs && a.next_obs == b.next_obs && a.actions == b.actions &&
         a.returns == b.returns && a.discounts == b.discounts && a.ids == b.ids &&
         a.weights == b.weights;
}

class ReplayResume : public ::testing::TestWithParam<WindowCase> {};

TEST_P(ReplayResume, LoadedBufferSamplesExactlyAsTheOriginal) {
  const WindowCase c = GetParam();
  ReplayOptions opt;
  opt.num_envs = 2;
  opt.capacity = 40;
  opt.obs_size = c.binary ? 70 : 4;
  opt.binary = c.binary;
  opt.n_step = c.n_step;
  opt.prioritized = c.prioritized;
  opt.beta = 0.6;
  ReplayBuffer original(opt);
  Feeder feeder(opt, 5);
  Rng rng(6);
  const int batch = 64;
  ReplaySampleArrays a(batch, opt.obs_size), b(batch, opt.obs_size);
  std::vector<float> td(batch);
  for (int row = 0; row < 33; ++row) {  // wraps the 20-row ring
    feeder.add_row(original);
    if (c.prioritized && original.num_sampleable() > 0) {
      original.sample(batch, rng, a.view());
      for (float& x : td) x = static_cast<float>(rng.normal());
      original.update_priorities(a.ids.data(), td.data(), batch);
    }
  }

  ReplayOptions other_beta = opt;
  other_beta.beta = 0.1;  // restored from the state
  ReplayBuffer resumed(other_beta);
  resumed.load_state(original.save_state());
  EXPECT_EQ(resumed.options().beta, 0.6);
  EXPECT_EQ(resumed.save_state(), original.save_state());

  Rng rng_a = rng, rng_b = rng;
  for (int round = 0; round < 5; ++round) {
    original.sample(batch, rng_a, a.view());
    resumed.sample(batch, rng_b, b.view());
    ASSERT_TRUE(same_sample(a, b)) << "round " << round;
    for (float& x : td) x = static_cast<float>(rng.normal());
    original.update_priorities(a.ids.data(), td.data(), batch);
    resumed.update_priorities(b.ids.data(), td.data(), batch);
    feeder.next_row();
    feeder.add_last(original);
    feeder.add_last(resumed);
  }

  // Bad states are refused and leave the buffer as it was.
  const std::string bytes = original.save_state();
  ReplayOptions other = opt;
  other.n_step = c.n_step + 1;
  ReplayBuffer mismatched(other);
  EXPECT_THROW(mismatched.load_state(bytes), InputError);
  EXPECT_THROW(resumed.load_state(bytes.substr(0, bytes.size() - 1)), InputError);
  EXPECT_THROW(resumed.load_state(bytes + "x"), InputError);
  EXPECT_THROW(resumed.load_state("not a buffer at all"), InputError);
  if (c.prioritized) {
    // The last stored value is the priority of a sampleable transition (the ring is full and
    // its last position is not among the newest rows): neither negative nor zero is valid.
    for (const double bad : {-1.0, 0.0}) {
      std::string corrupt = bytes;
      std::memcpy(&corrupt[corrupt.size() - sizeof(double)], &bad, sizeof(double));
      EXPECT_THROW(resumed.load_state(corrupt), InputError) << bad;
    }
  }
  original.sample(batch, rng_a, a.view());
  resumed.sample(batch, rng_b, b.view());
  EXPECT_TRUE(same_sample(a, b));
}

INSTANTIATE_TEST_SUITE_P(Cases, ReplayResume,
                         ::testing::Values(WindowCase{false, 3, false}, WindowCase{true, 2, true},
                                           WindowCase{false, 1, true}));

TEST(Replay, CapacityOverwritesTheOldestRows) {
  ReplayOptions opt;
  opt.num_envs = 2;
  opt.capacity = 11;  // 5 rows per env
  opt.obs_size = 3;
  ReplayBuffer buffer(opt);
  EXPECT_EQ(buffer.capacity(), 10);
  Feeder feeder(opt, 4);
  Rng rng(1);
  ReplaySampleArrays s(64, 3);
  EXPECT_THROW(buffer.sample(64, rng, s.view()), std::logic_error);
  for (int row = 0; row < 12; ++row) feeder.add_row(buffer);
  EXPECT_EQ(buffer.size(), 10);
  EXPECT_EQ(buffer.num_sampleable(), 10);
  std::set<int64_t> rows;
  for (int k = 0; k < 50; ++k) {
    buffer.sample(64, rng, s.view());
    for (int i = 0; i < 64; ++i) {
      const auto [row, env] = decode(&s.obs[3 * i], false);
      EXPECT_EQ(s.ids[i], row * 2 + env);
      rows.insert(row);
    }
  }
  EXPECT_EQ(rows, (std::set<int64_t>{7, 8, 9, 10, 11}));

  ReplayOptions tiny = opt;
  tiny.capacity = 4;
  tiny.n_step = 3;  // 2 rows cannot hold a 3-step window
  EXPECT_THROW(ReplayBuffer{tiny}, std::invalid_argument);
}

}  // namespace
}  // namespace stoch::rl

namespace stoch::rl {
namespace {

// One transition per add(), with the given action and reward.
void add_one(ReplayBuffer& b, int action, float reward) {
  const std::vector<float> obs(b.options().obs_size, 0.5f);
  const uint8_t no = 0;
  b.add(obs.data(), &action, &reward, obs.data(), &no, &no);
}

// Replay states that no run can write, found by fuzzing (tests/fuzz/fuzz_replay_state.cpp):
// each is refused with an InputError instead of sampling NaN weights, ids that overflow, or
// actions that index past the Q-values.
TEST(Replay, LoadRefusesStatesNoRunCanWrite) {
  ReplayOptions opt;
  opt.capacity = 8;
  opt.obs_size = 2;
  opt.prioritized = true;
  opt.beta = 0.375;
  opt.num_actions = 4;

  // An empty prioritised buffer round-trips (its empty arrays once reached memcpy as null).
  ReplayBuffer empty(opt);
  ReplayBuffer loaded(opt);
  loaded.load_state(empty.save_state());
  EXPECT_EQ(loaded.size(), 0);

  const auto refused = [&](ReplayBuffer& source, ReplayOptions into, const char* says) {
    ReplayBuffer target(into);
    try {
      target.load_state(source.save_state());
      ADD_FAILURE() << "accepted; expected " << says;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  ReplayOptions five_actions = opt;
  five_actions.num_actions = 0;  // unchecked: the source may hold any action
  ReplayBuffer wide(five_actions);
  add_one(wide, 4, 1.0f);
  refused(wide, opt, "action 4");
  ReplayBuffer negative(five_actions);
  add_one(negative, -1, 1.0f);
  refused(negative, opt, "action -1");
  ReplayBuffer nan_reward(five_actions);
  add_one(nan_reward, 1, std::nanf(""));
  refused(nan_reward, opt, "reward nan");

  // Counters patched in the bytes: beta (annealed within [0, 1]) and the row count.
  ReplayBuffer good(opt);
  for (int i = 0; i < 3; ++i) add_one(good, i, 0.5f);
  const std::string bytes = good.save_state();
  const auto patched = [&](double old_value, double new_value, size_t extra_offset, auto put) {
    std::string b = bytes;
    char pattern[8];
    std::memcpy(pattern, &old_value, 8);
    const size_t at = b.find(std::string(pattern, 8));
    EXPECT_NE(at, std::string::npos);
    put(b, at + extra_offset, new_value);
    return b;
  };
  const auto put_double = [](std::string& b, size_t at, double v) { std::memcpy(&b[at], &v, 8); };
  const auto put_int = [](std::string& b, size_t at, double v) {
    const int64_t n = static_cast<int64_t>(v);
    std::memcpy(&b[at], &n, 8);
  };
  for (const std::string& bad :
       {patched(0.375, 5.0, 0, put_double), patched(0.375, std::nan(""), 0, put_double),
        patched(0.375, 4.6e18, 8, put_int)}) {  // rows_added follows beta
    ReplayBuffer target(opt);
    EXPECT_THROW(target.load_state(bad), InputError);
  }
}

}  // namespace
}  // namespace stoch::rl
