#include "rl/replay_buffer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/errors.h"
#include "core/strings.h"
#include "rl/state_io.h"

namespace stoch::rl {

namespace {

constexpr uint8_t kTerminated = 1;
constexpr uint8_t kTruncated = 2;
constexpr double kInf = std::numeric_limits<double>::infinity();

constexpr char kMagic[8] = {'S', 'T', 'O', 'C', 'H', 'R', 'B', '\0'};
constexpr uint32_t kFormatVersion = 1;

// Byte b -> its 8 bits as floats, so unpacking is one 32-byte copy per byte.
struct BitTable {
  float v[256][8];
  BitTable() {
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 8; ++j) v[b][j] = static_cast<float>((b >> j) & 1);
  }
};

const BitTable& bit_table() {
  static const BitTable table;
  return table;
}

// True when every entry is +-0 or 1. Compares bit patterns: float compares would not
// vectorise (NaN handling), and this runs over every observation added.
bool all_binary(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    uint32_t u;
    std::memcpy(&u, x + j, sizeof(u));
    bad |= static_cast<uint32_t>((u << 1) != 0) & static_cast<uint32_t>(u != 0x3F800000u);
  }
  return bad == 0;
}

// Rows [0, n) of a buffer's array, as raw bytes.
template <class T>
void put_prefix(StateWriter& w, const std::vector<T>& v, int64_t n) {
  w.put_raw(v.data(), static_cast<size_t>(n) * sizeof(T));
}

template <class T>
void get_prefix(StateReader& r, std::vector<T>& v, int64_t n) {
  r.get_raw(v.data(), static_cast<size_t>(n) * sizeof(T));
}

}  // namespace

// ---- PriorityTree ----

PriorityTree::PriorityTree(int64_t num_leaves) : num_leaves_(num_leaves) {
  while (base_ < num_leaves_) base_ *= 2;
  sum_.assign(2 * base_, 0.0);
  min_.assign(2 * base_, kInf);
}

void PriorityTree::pull(int64_t node) {
  sum_[node] = sum_[2 * node] + sum_[2 * node + 1];
  min_[node] = std::min(min_[2 * node], min_[2 * node + 1]);
}

void PriorityTree::set(int64_t leaf, double priority) {
  int64_t node = base_ + leaf;
  sum_[node] = priority;
  min_[node] = priority > 0 ? priority : kInf;
  for (node /= 2; node >= 1; node /= 2) pull(node);
}

int64_t PriorityTree::find(double prefix) const {
  int64_t node = 1;
  while (node < base_) {
    const int64_t left = 2 * node;
    // Going right only into a positive subtree (and left only when the right one is empty
    // or the prefix falls left) keeps rounding from ever landing on a zero leaf.
    if (prefix < sum_[left] || sum_[left + 1] <= 0) {
      node = left;
    } else {
      prefix -= sum_[left];
      node = left + 1;
    }
  }
  return node - base_;
}

void PriorityTree::assign(const std::vector<double>& leaves) {
  std::fill(sum_.begin(), sum_.end(), 0.0);
  std::fill(min_.begin(), min_.end(), kInf);
  for (int64_t i = 0; i < num_leaves_ && i < static_cast<int64_t>(leaves.size()); ++i) {
    sum_[base_ + i] = leaves[i];
    min_[base_ + i] = leaves[i] > 0 ? leaves[i] : kInf;
  }
  for (int64_t node = base_ - 1; node >= 1; --node) pull(node);
}

// ---- ReplaySampleArrays ----

ReplaySampleArrays::ReplaySampleArrays(int batch, int64_t obs_size)
    : obs(batch * obs_size),
      returns(batch),
      next_obs(batch * obs_size),
      discounts(batch),
      weights(batch),
      actions(batch),
      ids(batch) {}

ReplaySample ReplaySampleArrays::view() {
  return {obs.data(),       actions.data(), returns.data(), next_obs.data(),
          discounts.data(), ids.data(),     weights.data()};
}

// ---- ReplayBuffer ----

ReplayBuffer::ReplayBuffer(const ReplayOptions& options) : opt_(options) {
  if (opt_.obs_size < 1) throw std::invalid_argument("replay: obs_size must be >= 1");
  if (opt_.num_envs < 1) throw std::invalid_argument("replay: num_envs must be >= 1");
  if (opt_.n_step < 1) throw std::invalid_argument("replay: n_step must be >= 1");
  if (!(opt_.gamma >= 0 && opt_.gamma <= 1)) {
    throw std::invalid_argument(str("replay: gamma must be in [0, 1], got ", opt_.gamma));
  }
  rows_ = opt_.capacity / opt_.num_envs;
  if (rows_ < opt_.n_step) {
    throw std::invalid_argument(str("replay: capacity ", opt_.capacity, " over ", opt_.num_envs,
                                    " envs holds ", rows_, " steps per env, fewer than n_step ",
                                    opt_.n_step));
  }
  if (opt_.prioritized) {
    if (!(opt_.alpha >= 0)) throw std::invalid_argument("replay: alpha must be >= 0");
    if (!(opt_.beta >= 0)) throw std::invalid_argument("replay: beta must be >= 0");
    if (!(opt_.eps > 0)) throw std::invalid_argument("replay: eps must be > 0");
  }

  const int64_t slots = rows_ * opt_.num_envs;
  if (opt_.binary) {
    obs_bytes_ = (opt_.obs_size + 7) / 8;
    obs_bits_.assign(slots * obs_bytes_, 0);
    next_bits_.assign(slots * obs_bytes_, 0);
  } else {
    obs_.assign(slots * opt_.obs_size, 0.0f);
    next_obs_.assign(slots * opt_.obs_size, 0.0f);
  }
  actions_.assign(slots, 0);
  rewards_.assign(slots, 0.0f);
  flags_.assign(slots, 0);
  if (opt_.prioritized) tree_ = PriorityTree(slots);
}

int64_t ReplayBuffer::num_sampleable() const {
  return std::max<int64_t>(0, rows_filled_ - opt_.n_step + 1) * opt_.num_envs;
}

bool ReplayBuffer::sampleable(int64_t row) const {
  return row >= rows_added_ - rows_filled_ && row + opt_.n_step - 1 < rows_added_;
}

int64_t ReplayBuffer::memory_bytes() const {
  return static_cast<int64_t>((obs_.size() + next_obs_.size() + rewards_.size()) * sizeof(float) +
                              obs_bits_.size() + next_bits_.size() +
                              actions_.size() * sizeof(int32_t) + flags_.size()) +
         tree_.memory_bytes();
}

void ReplayBuffer::store_obs(std::vector<float>& floats, std::vector<uint8_t>& bits, int64_t slot,
                             const float* x) {
  const int64_t d = opt_.obs_size;
  if (!opt_.binary) {
    std::memcpy(floats.data() + slot * d, x, d * sizeof(float));
    return;
  }
  uint8_t* bytes = bits.data() + slot * obs_bytes_;
  const int64_t full = d / 8;
  for (int64_t b = 0; b < full; ++b) {
    const float* xb = x + 8 * b;
    unsigned byte = 0;  // constant shifts: the compiler vectorises this
    for (int j = 0; j < 8; ++j) byte |= static_cast<unsigned>(xb[j] != 0.0f) << j;
    bytes[b] = static_cast<uint8_t>(byte);
  }
  if (full < obs_bytes_) {
    unsigned byte = 0;
    for (int64_t j = 8 * full; j < d; ++j)
      byte |= static_cast<unsigned>(x[j] != 0.0f) << (j - 8 * full);
    bytes[full] = static_cast<uint8_t>(byte);
  }
}

void ReplayBuffer::load_obs(const std::vector<float>& floats, const std::vector<uint8_t>& bits,
                            int64_t slot, float* out) const {
  const int64_t d = opt_.obs_size;
  if (!opt_.binary) {
    std::memcpy(out, floats.data() + slot * d, d * sizeof(float));
    return;
  }
  const uint8_t* bytes = bits.data() + slot * obs_bytes_;
  const auto& table = bit_table().v;
  const int64_t full = d / 8;
  for (int64_t b = 0; b < full; ++b) std::memcpy(out + 8 * b, table[bytes[b]], 8 * sizeof(float));
  for (int64_t j = 8 * full; j < d; ++j) out[j] = table[bytes[full]][j - 8 * full];
}

void ReplayBuffer::add(const float* obs, const int* actions, const float* rewards,
                       const float* next_obs, const uint8_t* terminated, const uint8_t* truncated) {
  const int envs = opt_.num_envs;
  const int64_t d = opt_.obs_size;
  if (opt_.binary) {
    // Checked before anything is overwritten, so a bad row leaves the buffer as it was.
    for (const float* x : {obs, next_obs}) {
      if (all_binary(x, envs * d)) continue;
      const int64_t j = std::find_if(x, x + envs * d, [](float v) { return v != 0 && v != 1; }) - x;
      throw std::invalid_argument(
          str("replay: binary observation holds ", x[j], " at env ", j / d, " index ", j % d));
    }
  }

  const int64_t row = rows_added_;
  for (int e = 0; e < envs; ++e) {
    const int64_t s = slot(row, e);
    if (opt_.prioritized) tree_.set(s, 0.0);  // not sampleable until its window is written
    store_obs(obs_, obs_bits_, s, obs + e * d);
    store_obs(next_obs_, next_bits_, s, next_obs + e * d);
    actions_[s] = actions[e];
    rewards_[s] = rewards[e];
    flags_[s] = (terminated[e] ? kTerminated : 0) | (truncated[e] ? kTruncated : 0);
  }
  rows_added_ += 1;
  rows_filled_ = std::min(rows_added_, rows_);
  // This row completes the window of row rows_added_ - n, which becomes sampleable.
  const int64_t ready = rows_added_ - opt_.n_step;
  if (opt_.prioritized && ready >= 0) {
    const double p = std::pow(max_priority_, opt_.alpha);
    for (int e = 0; e < envs; ++e) tree_.set(slot(ready, e), p);
  }
}

void ReplayBuffer::write_sample(int64_t row, int env, int i, const ReplaySample& out) const {
  const int64_t d = opt_.obs_size;
  const int64_t first = slot(row, env);
  int64_t last = first;
  double ret = 0.0, g = 1.0;
  for (int k = 0; k < opt_.n_step; ++k) {
    last = slot(row + k, env);
    ret += g * rewards_[last];
    g *= opt_.gamma;
    if (flags_[last]) break;  // the episode ends here
  }
  load_obs(obs_, obs_bits_, first, out.obs + i * d);
  load_obs(next_obs_, next_bits_, last, out.next_obs + i * d);
  out.actions[i] = actions_[first];
  out.returns[i] = static_cast<float>(ret);
  out.discounts[i] = (flags_[last] & kTerminated) ? 0.0f : static_cast<float>(g);
  if (out.ids) out.ids[i] = row * opt_.num_envs + env;
}

void ReplayBuffer::sample(int batch, Rng& rng, const ReplaySample& out) const {
  const int64_t count = num_sampleable();
  if (count == 0) throw std::logic_error("replay: sample() before any transition is sampleable");
  const int envs = opt_.num_envs;
  const int64_t oldest = rows_added_ - rows_filled_;
  if (!opt_.prioritized) {
    for (int i = 0; i < batch; ++i) {
      const int64_t k = static_cast<int64_t>(rng.below(static_cast<uint64_t>(count)));
      write_sample(oldest + k / envs, static_cast<int>(k % envs), i, out);
      if (out.weights) out.weights[i] = 1.0f;
    }
    return;
  }
  // Stratified: one draw from each of `batch` equal slices of the total priority.
  const double slice = tree_.total() / batch;
  const double min_p = tree_.min_positive();
  const int64_t oldest_pos = oldest % rows_;
  for (int i = 0; i < batch; ++i) {
    const int64_t leaf = tree_.find((i + rng.uniform()) * slice);
    const int64_t pos = leaf / envs;
    const int64_t row = oldest + (pos - oldest_pos + rows_) % rows_;
    write_sample(row, static_cast<int>(leaf % envs), i, out);
    // (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / p_min)^-beta.
    if (out.weights)
      out.weights[i] = static_cast<float>(std::pow(tree_.get(leaf) / min_p, -opt_.beta));
  }
}

void ReplayBuffer::update_priorities(const int64_t* ids, const float* td_errors, int count) {
  if (!opt_.prioritized) return;
  for (int i = 0; i < count; ++i) {
    if (!std::isfinite(td_errors[i])) {
      throw std::invalid_argument(
          str("replay: td error ", td_errors[i], " for transition ", ids[i]));
    }
  }
  const int envs = opt_.num_envs;
  for (int i = 0; i < count; ++i) {
    if (ids[i] < 0) continue;
    const int64_t row = ids[i] / envs;
    if (!sampleable(row)) continue;  // overwritten since it was sampled
    const double p = std::fabs(static_cast<double>(td_errors[i])) + opt_.eps;
    max_priority_ = std::max(max_priority_, p);
    tree_.set(slot(row, static_cast<int>(ids[i] % envs)), std::pow(p, opt_.alpha));
  }
}

double ReplayBuffer::priority(int64_t id) const {
  if (!opt_.prioritized || id < 0) return 0.0;
  const int64_t row = id / opt_.num_envs;
  if (!sampleable(row)) return 0.0;
  return tree_.get(slot(row, static_cast<int>(id % opt_.num_envs)));
}

// ---- save / load ----

std::string ReplayBuffer::save_state() const {
  StateWriter w;
  w.put_raw(kMagic, sizeof(kMagic));
  w.put(kFormatVersion);
  w.put(capacity());
  w.put(opt_.obs_size);
  w.put<uint8_t>(opt_.binary);
  w.put<int32_t>(opt_.num_envs);
  w.put<int32_t>(opt_.n_step);
  w.put(opt_.gamma);
  w.put<uint8_t>(opt_.prioritized);
  w.put(opt_.alpha);
  w.put(opt_.eps);
  w.put(opt_.beta);
  w.put(rows_added_);
  w.put(max_priority_);
  // Ring positions [0, rows_filled_) are exactly the ones holding data.
  const int64_t slots = rows_filled_ * opt_.num_envs;
  if (opt_.binary) {
    put_prefix(w, obs_bits_, slots * obs_bytes_);
    put_prefix(w, next_bits_, slots * obs_bytes_);
  } else {
    put_prefix(w, obs_, slots * opt_.obs_size);
    put_prefix(w, next_obs_, slots * opt_.obs_size);
  }
  put_prefix(w, actions_, slots);
  put_prefix(w, rewards_, slots);
  put_prefix(w, flags_, slots);
  if (opt_.prioritized) {
    std::vector<double> leaves(slots);
    for (int64_t s = 0; s < slots; ++s) leaves[s] = tree_.get(s);
    put_prefix(w, leaves, slots);
  }
  return std::move(w).str();
}

ReplayBuffer ReplayBuffer::read(StateReader& in) const {
  char magic[sizeof(kMagic)];
  in.get_raw(magic, sizeof(magic));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    throw InputError("replay buffer state: not a replay buffer");
  }
  const auto version = in.get<uint32_t>();
  if (version != kFormatVersion) {
    throw InputError(
        str("replay buffer state: format version ", version, ", expected ", kFormatVersion));
  }
  const auto capacity = in.get<int64_t>();
  const auto obs_size = in.get<int64_t>();
  const bool binary = in.get<uint8_t>();
  const auto num_envs = in.get<int32_t>();
  const auto n_step = in.get<int32_t>();
  const auto gamma = in.get<double>();
  const bool prioritized = in.get<uint8_t>();
  const auto alpha = in.get<double>();
  const auto eps = in.get<double>();
  const auto beta = in.get<double>();
  const bool same = capacity == this->capacity() && obs_size == opt_.obs_size &&
                    binary == opt_.binary && num_envs == opt_.num_envs && n_step == opt_.n_step &&
                    gamma == opt_.gamma && prioritized == opt_.prioritized &&
                    (!prioritized || (alpha == opt_.alpha && eps == opt_.eps));
  if (!same) {
    throw InputError(str("replay buffer state: saved with capacity ", capacity, ", obs_size ",
                         obs_size, ", binary ", binary, ", num_envs ", num_envs, ", n_step ",
                         n_step, ", gamma ", gamma, ", prioritized ", prioritized,
                         "; this buffer has ", this->capacity(), ", ", opt_.obs_size, ", ",
                         opt_.binary, ", ", opt_.num_envs, ", ", opt_.n_step, ", ", opt_.gamma,
                         ", ", opt_.prioritized, " (alpha and eps must match too)"));
  }
  const auto rows_added = in.get<int64_t>();
  const auto max_priority = in.get<double>();
  // 2^48 rows is far beyond any run, and keeps transition ids (row * num_envs + env) in range.
  // Priorities come from float TD errors plus eps; beta is annealed within [0, 1].
  if (rows_added < 0 || rows_added > (int64_t{1} << 48) ||
      !(max_priority >= std::min(opt_.eps, 1.0)) || !(max_priority <= 1e39) ||
      !(beta >= 0 && beta <= 1))
    throw InputError(str("replay buffer state: bad counters (rows ", rows_added, ", max priority ",
                         max_priority, ", beta ", beta, ")"));

  ReplayBuffer loaded(opt_);
  loaded.opt_.beta = beta;
  loaded.rows_added_ = rows_added;
  loaded.rows_filled_ = std::min(rows_added, rows_);
  loaded.max_priority_ = max_priority;
  const int64_t slots = loaded.rows_filled_ * opt_.num_envs;
  if (opt_.binary) {
    get_prefix(in, loaded.obs_bits_, slots * obs_bytes_);
    get_prefix(in, loaded.next_bits_, slots * obs_bytes_);
  } else {
    get_prefix(in, loaded.obs_, slots * opt_.obs_size);
    get_prefix(in, loaded.next_obs_, slots * opt_.obs_size);
  }
  get_prefix(in, loaded.actions_, slots);
  get_prefix(in, loaded.rewards_, slots);
  get_prefix(in, loaded.flags_, slots);
  for (size_t k = 0; k < loaded.obs_.size() && !opt_.binary; ++k)
    if (!std::isfinite(loaded.obs_[k]) || !std::isfinite(loaded.next_obs_[k]))
      throw InputError(str("replay buffer state: observation value ", k, " is not finite"));
  for (int64_t k = 0; k < slots; ++k) {
    const int32_t a = loaded.actions_[k];
    if (a < 0 || (opt_.num_actions > 0 && a >= opt_.num_actions) ||
        !std::isfinite(loaded.rewards_[k]) || loaded.flags_[k] > (kTerminated | kTruncated))
      throw InputError(str("replay buffer state: transition ", k, " has action ", a, ", reward ",
                           loaded.rewards_[k], ", flags ", int(loaded.flags_[k]),
                           (opt_.num_actions > 0 ? str(" (", opt_.num_actions, " actions)") : "")));
  }
  if (opt_.prioritized) {
    std::vector<double> leaves(slots);
    get_prefix(in, leaves, slots);
    // A priority exactly where a transition is sampleable, as add() maintains, within the range
    // that update_priorities() can give: [eps^alpha, max_priority^alpha], give or take rounding.
    const double lo = std::pow(opt_.eps, opt_.alpha) * (1 - 1e-9);
    const double hi = std::pow(max_priority, opt_.alpha) * (1 + 1e-9);
    const int64_t oldest = loaded.rows_added_ - loaded.rows_filled_;
    for (int64_t k = 0; k < slots; ++k) {
      const int64_t pos = k / opt_.num_envs;
      const int64_t row = oldest + (pos - oldest % rows_ + rows_) % rows_;
      const double p = leaves[k];
      const bool in_range = p >= lo && p <= hi;
      if (!(p == 0 || in_range) || (p > 0) != loaded.sampleable(row)) {
        throw InputError(str("replay buffer state: bad priority ", p, " at slot ", k));
      }
    }
    loaded.tree_.assign(leaves);
  }
  return loaded;
}

void ReplayBuffer::load_state(const std::string& bytes) {
  StateReader in(bytes, "replay buffer state");
  ReplayBuffer loaded = read(in);
  in.expect_end();
  *this = std::move(loaded);
}

}  // namespace stoch::rl
