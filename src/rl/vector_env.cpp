#include "rl/vector_env.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/errors.h"
#include "core/registry.h"
#include "core/rng.h"
#include "core/strings.h"
#include "rl/state_io.h"

namespace stoch::rl {

namespace {

constexpr uint32_t kStateMagic = 0x56454E31;  // "VEN1"

}  // namespace

VectorEnv::VectorEnv(const std::string& name, const EnvOptions& options, int num_envs,
                     uint64_t seed) {
  if (num_envs < 1) throw std::invalid_argument(str("num_envs: expected >= 1, got ", num_envs));
  const EnvEntry& entry = registry<EnvEntry>().get(name, "env");
  for (int i = 0; i < num_envs; ++i) envs_.push_back(entry.make(options));

  shape_ = envs_[0]->observation_shape();
  obs_size_ = 1;
  for (int64_t d : shape_) obs_size_ *= d;
  binary_ = envs_[0]->binary_observation();
  num_actions_ = envs_[0]->num_actions();

  const size_t n = static_cast<size_t>(num_envs);
  obs_.assign(n * obs_size_, 0.0f);
  acted_obs_.assign(n * obs_size_, 0.0f);
  next_obs_.assign(n * obs_size_, 0.0f);
  rewards_.assign(n, 0.0f);
  terminated_.assign(n, 0);
  truncated_.assign(n, 0);
  returns_.assign(n, 0.0);
  lengths_.assign(n, 0);

  this->seed(seed);
  reset_all();
}

void VectorEnv::seed(uint64_t seed) {
  for (size_t i = 0; i < envs_.size(); ++i) envs_[i]->seed(mix_seed(seed, i));
}

void VectorEnv::reset_all() {
  for (int i = 0; i < num_envs(); ++i) {
    envs_[i]->reset();
    envs_[i]->observe(row(obs_, i));
    returns_[i] = 0.0;
    lengths_[i] = 0;
  }
  next_obs_ = obs_;
  finished_.clear();
}

const std::vector<EpisodeEnd>& VectorEnv::step(const int* actions) {
  finished_.clear();
  // obs_ is overwritten below; keep what was acted on for the replay's (obs_t, a_t) pair.
  std::memcpy(acted_obs_.data(), obs_.data(), obs_.size() * sizeof(float));
  for (int i = 0; i < num_envs(); ++i) {
    const int a = actions[i];
    if (a < 0 || a >= num_actions_) {
      throw std::invalid_argument(
          str("VectorEnv::step: env ", i, " got action ", a, ", expected [0, ", num_actions_, ")"));
    }
    const StepResult r = envs_[i]->step(a);
    rewards_[i] = r.reward;
    terminated_[i] = r.terminated;
    truncated_[i] = r.truncated;
    returns_[i] += r.reward;
    lengths_[i] += 1;
    envs_[i]->observe(row(next_obs_, i));
    if (r.terminated || r.truncated) {
      finished_.push_back({i, returns_[i], lengths_[i], !r.terminated});
      returns_[i] = 0.0;
      lengths_[i] = 0;
      envs_[i]->reset();
      envs_[i]->observe(row(obs_, i));
    } else {
      std::memcpy(row(obs_, i), row(next_obs_, i), obs_size_ * sizeof(float));
    }
  }
  return finished_;
}

std::string VectorEnv::save_state() const {
  StateWriter w;
  w.put(kStateMagic).put<int64_t>(num_envs()).put(obs_size_);
  for (int i = 0; i < num_envs(); ++i) {
    const std::string s = envs_[i]->save_state();
    w.put_vector(std::vector<char>(s.begin(), s.end()));
  }
  w.put_vector(returns_).put_vector(lengths_).put_vector(obs_);
  return std::move(w).str();
}

void VectorEnv::load_state(const std::string& bytes) {
  try {
    StateReader r(bytes);
    if (r.get<uint32_t>() != kStateMagic) throw std::runtime_error("not a vector-env state");
    const int64_t n = r.get<int64_t>();
    const int64_t d = r.get<int64_t>();
    if (n != num_envs() || d != obs_size_) {
      throw std::runtime_error(str("state has ", n, " envs of obs size ", d, ", this has ",
                                   num_envs(), " of ", obs_size_));
    }
    std::vector<std::string> env_states;
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<char> s = r.get_vector<char>();
      env_states.emplace_back(s.begin(), s.end());
    }
    std::vector<double> returns = r.get_vector<double>();
    std::vector<int64_t> lengths = r.get_vector<int64_t>();
    std::vector<float> obs = r.get_vector<float>();
    r.expect_end();
    if (returns.size() != returns_.size() || lengths.size() != lengths_.size() ||
        obs.size() != obs_.size()) {
      throw std::runtime_error("array sizes do not match");
    }
    // An env that refuses its state must not leave the others half-loaded.
    std::vector<std::string> previous;
    for (const auto& env : envs_) previous.push_back(env->save_state());
    try {
      for (int64_t i = 0; i < n; ++i) envs_[i]->load_state(env_states[i]);
    } catch (...) {
      for (int64_t i = 0; i < n; ++i) envs_[i]->load_state(previous[i]);
      throw;
    }
    returns_ = std::move(returns);
    lengths_ = std::move(lengths);
    obs_ = std::move(obs);
  } catch (const std::runtime_error& e) {
    throw InputError(str("vector env state: ", e.what()));
  }
  // The last step's outputs are not part of the state; present them as a fresh start.
  acted_obs_ = obs_;
  next_obs_ = obs_;
  std::fill(rewards_.begin(), rewards_.end(), 0.0f);
  std::fill(terminated_.begin(), terminated_.end(), 0);
  std::fill(truncated_.begin(), truncated_.end(), 0);
  finished_.clear();
}

}  // namespace stoch::rl
