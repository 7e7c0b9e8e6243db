// Experience replay for DQN: uniform or prioritised (Schaul et al. 2016), with n-step returns.
//
// Transitions arrive one row at a time, one per env stream (VectorEnv's layout), so the
// buffer is a ring of rows: row a (the a-th add(), counted from 0 forever) sits at ring
// position a % rows and each stream's transitions stay in time order. A transition is named
// by its id = a * num_envs + env, which stays unique after its slot is overwritten.
//
// The n-step window of transition (a, e) is (a, e), (a+1, e), ... up to n transitions,
// stopping at the first one that is terminated or truncated. A transition is sampleable once
// its whole window is written, i.e. a + n - 1 < rows added; the newest n - 1 rows wait.
// Windows run forward in time, so they never touch overwritten rows.
//
// Each slot stores next_obs as given (not derived from the following row): truncated
// episodes bootstrap from their true final observation, at 2x observation memory. Binary
// observations are packed 8 to a byte: MinAtar (10x10x10) at capacity 100k is 25 MB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace stoch::rl {

class StateReader;

// Complete binary tree over leaf priorities: proportional sampling by prefix-sum search, and
// the smallest positive leaf for importance-weight normalisation. Parents are always
// recomputed from their children, never adjusted by differences, so totals do not drift and
// a tree rebuilt from its leaves is bit-identical to the original.
class PriorityTree {
 public:
  explicit PriorityTree(int64_t num_leaves = 0);

  int64_t num_leaves() const { return num_leaves_; }
  // priority >= 0; a zero leaf is never found (the slot is not sampleable).
  void set(int64_t leaf, double priority);
  double get(int64_t leaf) const { return sum_[base_ + leaf]; }
  double total() const { return sum_[1]; }
  // Smallest positive leaf; +inf when every leaf is zero.
  double min_positive() const { return min_[1]; }
  // The leaf whose cumulative range [sum of leaves before it, + its priority) holds prefix;
  // prefixes at or past total() (rounding) give the last positive leaf. Requires total() > 0.
  int64_t find(double prefix) const;
  // Replaces every leaf and rebuilds the inner nodes.
  void assign(const std::vector<double>& leaves);
  int64_t memory_bytes() const {
    return static_cast<int64_t>((sum_.size() + min_.size()) * sizeof(double));
  }

 private:
  void pull(int64_t node);

  int64_t num_leaves_ = 0;
  int64_t base_ = 1;  // leaves live at [base_, base_ + num_leaves_); base_ is a power of two
  std::vector<double> sum_, min_;
};

struct ReplayOptions {
  int64_t capacity = 100000;  // transitions; rounded down to a multiple of num_envs
  int64_t obs_size = 0;       // floats per observation
  bool binary = false;        // every entry is 0 or 1: stored as bits
  int num_envs = 1;           // transitions per add()
  int n_step = 1;
  double gamma = 0.99;
  bool prioritized = false;
  double alpha = 0.6;   // priority exponent: P(i) ~ (|td_i| + eps)^alpha
  double beta = 0.4;    // importance-weight exponent; anneal it with set_beta()
  double eps = 1e-6;    // keeps every transition sampleable
  int num_actions = 0;  // > 0: a loaded state's actions must lie in [0, num_actions)
};

// Caller-owned arrays (e.g. tensor storage) for one batch; sample() writes `batch` rows.
struct ReplaySample {
  float* obs = nullptr;        // batch x obs_size: obs_t
  int64_t* actions = nullptr;  // batch: a_t
  float* returns = nullptr;    // batch: r_t + g r_{t+1} + ... + g^{k-1} r_{t+k-1}
  float* next_obs = nullptr;   // batch x obs_size: next_obs of transition t+k-1
  float* discounts = nullptr;  // batch: g^k, or 0 when transition t+k-1 is terminated
  int64_t* ids = nullptr;      // batch, optional: transition ids for update_priorities()
  float* weights = nullptr;    // batch, optional: importance weights (1 for uniform replay)
};

// Owning storage for a ReplaySample, for callers without tensors of their own.
struct ReplaySampleArrays {
  ReplaySampleArrays(int batch, int64_t obs_size);
  ReplaySample view();

  std::vector<float> obs, returns, next_obs, discounts, weights;
  std::vector<int64_t> actions, ids;
};

class ReplayBuffer {
 public:
  // Throws std::invalid_argument for inconsistent options (e.g. fewer rows than n_step).
  explicit ReplayBuffer(const ReplayOptions& options);

  const ReplayOptions& options() const { return opt_; }
  int64_t capacity() const { return rows_ * opt_.num_envs; }
  int64_t size() const { return rows_filled_ * opt_.num_envs; }  // stored transitions
  int64_t num_sampleable() const;                                // transitions with full windows
  int64_t rows_added() const { return rows_added_; }
  int64_t memory_bytes() const;

  // One transition per env stream, each array indexed by env (observations env-major,
  // num_envs x obs_size). Overwrites the oldest row when full.
  void add(const float* obs, const int* actions, const float* rewards, const float* next_obs,
           const uint8_t* terminated, const uint8_t* truncated);

  // Draws `batch` transitions (uniformly, or stratified by priority) and writes their n-step
  // samples to `out`. Throws std::logic_error when nothing is sampleable yet.
  void sample(int batch, Rng& rng, const ReplaySample& out) const;

  // Prioritised replay: priority of ids[i] becomes (|td_errors[i]| + eps)^alpha. Ids whose
  // slot has been overwritten since they were sampled are skipped.
  void update_priorities(const int64_t* ids, const float* td_errors, int count);
  void set_beta(double beta) { opt_.beta = beta; }
  // The tree priority of a transition; 0 when it is not sampleable (or replay is uniform).
  double priority(int64_t id) const;
  double total_priority() const { return tree_.total(); }

  // Contents, positions and priorities: a loaded buffer samples exactly as the saved one,
  // given the same Rng state. load_state() throws InputError for malformed data or data saved
  // with other options (beta excepted: the saved one is restored).
  std::string save_state() const;
  void load_state(const std::string& bytes);

 private:
  int64_t slot(int64_t row, int env) const { return (row % rows_) * opt_.num_envs + env; }
  bool sampleable(int64_t row) const;
  // A buffer with these options holding the state in `in`; a failure leaves *this untouched.
  ReplayBuffer read(StateReader& in) const;
  void store_obs(std::vector<float>& floats, std::vector<uint8_t>& bits, int64_t slot,
                 const float* x);
  void load_obs(const std::vector<float>& floats, const std::vector<uint8_t>& bits, int64_t slot,
                float* out) const;
  // Writes the n-step sample of transition (row, env) to out at position i.
  void write_sample(int64_t row, int env, int i, const ReplaySample& out) const;

  ReplayOptions opt_;
  int64_t rows_ = 0;         // ring length per env stream
  int64_t obs_bytes_ = 0;    // bytes per packed observation: entry j is bit j % 8 of byte j / 8
  int64_t rows_added_ = 0;   // add() calls so far; the next row's number
  int64_t rows_filled_ = 0;  // min(rows_added_, rows_): ring positions [0, rows_filled_) hold data

  std::vector<float> obs_, next_obs_;          // float observations
  std::vector<uint8_t> obs_bits_, next_bits_;  // binary observations
  std::vector<int32_t> actions_;
  std::vector<float> rewards_;
  std::vector<uint8_t> flags_;  // kTerminated | kTruncated

  PriorityTree tree_;
  double max_priority_ = 1.0;  // largest |td| + eps so far: new transitions get this
};

}  // namespace stoch::rl
