#include "rl/dqn/dqn_agent.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"
#include "core/torch/lane.h"
#include "core/torch/model_tensors.h"
#include "core/torch/state_tensors.h"
#include "rl/dqn/acting.h"
#include "rl/dqn/bellman_target.h"
#include "value/categorical_ops.h"

namespace stoch::rl {

DqnAgent::DqnAgent(const Options& s, const torch::Device& device)
    : dqn_(s.dqn),
      env_cfg_(s.env),
      seed_(s.seed),
      batch_size_(s.batch_size),
      total_updates_(s.total_updates),
      device_(device),
      rng_(mix_seed(s.seed, kActing)) {
  const auto* loss = registry<value::ValueLossEntry>().find(s.value.loss);
  distributional_ = loss && loss->distributional;
  if (distributional_ && s.value.transform() != "none")
    throw InputError(stoch::str("value.value_transform: not supported with value.loss ",
                                s.value.loss, " in dqn"));
  const int E = static_cast<int>(env_cfg_.num_envs);
  if (dqn_.train_every % E != 0)
    throw InputError(stoch::str("dqn.train_every: ", dqn_.train_every,
                                " must be a multiple of env.num_envs = ", E));
  // Each env's rows in the replay: a whole n-step window needs n of them, by the first update.
  if (dqn_.replay_capacity / E < dqn_.n_step)
    throw InputError(stoch::str("dqn.replay_capacity: ", dqn_.replay_capacity, " over ", E,
                                " envs holds fewer steps per env than dqn.n_step = ", dqn_.n_step));
  const int64_t first_rows = (dqn_.learning_starts + E - 1) / E + dqn_.train_every / E;
  if (first_rows < dqn_.n_step)
    throw InputError(stoch::str(
        "dqn.learning_starts: the first update would sample from ", first_rows,
        " steps per env (learning_starts + train_every over env.num_envs), fewer than one "
        "whole window of dqn.n_step = ",
        dqn_.n_step, "; expected learning_starts of at least ",
        (dqn_.n_step * E) - dqn_.train_every));
  envs_ = std::make_unique<VectorEnv>(env_cfg_.name, env_cfg_.options(), E,
                                      mix_seed(seed_, kEnvStream));
  obs_shape_ = envs_->observation_shape();
  num_actions_ = envs_->num_actions();
  actions_.assign(static_cast<size_t>(E), 0);

  ReplayOptions ro;
  ro.capacity = dqn_.replay_capacity;
  ro.obs_size = envs_->obs_size();
  ro.binary = envs_->binary_observation();
  ro.num_envs = E;
  ro.n_step = static_cast<int>(dqn_.n_step);
  ro.gamma = dqn_.gamma;
  ro.prioritized = dqn_.prioritized;
  ro.alpha = dqn_.priority_alpha;
  ro.beta = dqn_.priority_beta;
  ro.num_actions = num_actions_;
  replay_ = std::make_unique<ReplayBuffer>(ro);
  batch_ = std::make_unique<ReplaySampleArrays>(static_cast<int>(batch_size_), ro.obs_size);

  value::ValueLossConfig value_cfg = s.value;
  const bool categorical = value::make_value_loss(s.value)->categorical();
  if (categorical && value_cfg.support != "fixed") {
    // auto's bounds: the support itself, or where running bins may go. The time limit plays no
    // part: the targets bootstrap through it (support.h).
    const RewardRange r = envs_->env(0).reward_range();
    const value::Bounds b = value::discounted_return_bounds(r.lo, r.hi, dqn_.gamma);
    log::info(stoch::str("value.support ", value_cfg.support, ": ", env_cfg_.name, " pays ", r.lo,
                         " to ", r.hi, " a step, gamma ", dqn_.gamma,
                         " (values bootstrap through time limits)",
                         value_cfg.support == "auto" ? ": support [" : ": bins kept within [",
                         format_number(b.lo, 6), ", ", format_number(b.hi, 6), "]"));
    if (value_cfg.support == "auto") {
      value_cfg.v_min = b.lo;
      value_cfg.v_max = b.hi;
    } else {
      running_ = std::make_unique<value::RunningSupport>(
          value_cfg.v_min, value_cfg.v_max, value_cfg.support_k, value_cfg.support_rate, b);
    }
  }
  loss_ = value::make_value_loss(value_cfg);
  v_min_ = value_cfg.v_min;
  v_max_ = value_cfg.v_max;
  loss_->to(device);
  head_outputs_ = loss_->head_outputs();
  net_ = models::ValueNet(s.model, obs_shape_, num_actions_ * head_outputs_);
  target_ = models::ValueNet(s.model, obs_shape_, num_actions_ * head_outputs_);
  net_->to(device);
  target_->to(device);
  for (auto& p : target_->parameters()) p.set_requires_grad(false);
  sync_target(1.0);
  // Fixed inputs for the value-network hooks: states a uniformly random policy visits.
  VectorEnv probe_env(env_cfg_.name, env_cfg_.options(), 1, mix_seed(seed_, kProbe));
  Rng probe_rng(mix_seed(seed_, kProbe, 1));
  constexpr int64_t kProbeStates = 256;
  std::vector<float> states;
  for (int64_t i = 0; i < kProbeStates; ++i) {
    states.insert(states.end(), probe_env.observations(),
                  probe_env.observations() + probe_env.obs_size());
    int a = static_cast<int>(probe_rng.below(static_cast<uint64_t>(num_actions_)));
    probe_env.step(&a);
  }
  probe_states_ = obs_tensor(states.data(), kProbeStates).clone();
}

void DqnAgent::use_lane(Lane* lane) {
  lane_ = lane;
  net_->set_lane(lane);
}

torch::Tensor DqnAgent::obs_tensor(const float* data, int64_t rows) const {
  std::vector<int64_t> shape = {rows};
  shape.insert(shape.end(), obs_shape_.begin(), obs_shape_.end());
  return torch::from_blob(const_cast<float*>(data), shape, torch::kFloat).to(device_);
}

torch::Tensor DqnAgent::heads(models::ValueNetImpl& net, const torch::Tensor& obs) {
  return net.forward(obs).view({obs.size(0), num_actions_, head_outputs_});
}

torch::Tensor DqnAgent::q_values(models::ValueNetImpl& net, const torch::Tensor& obs) {
  torch::NoGradGuard no_grad;
  return loss_->value(heads(net, obs));
}

bool DqnAgent::greedy_on_host(const float* obs, int& action) {
  if (!device_.is_cpu()) return false;
  q_row_.resize(static_cast<size_t>(num_actions_ * head_outputs_));
  if (!net_->forward_row(obs, q_row_.data())) return false;
  action = loss_->greedy_on_host(q_row_.data(), num_actions_);
  return true;
}

int DqnAgent::greedy_action(const float* obs) {
  int action = 0;
  if (greedy_on_host(obs, action)) return action;
  return static_cast<int>(q_values(*net_, obs_tensor(obs, 1)).argmax(1).item<int64_t>());
}

double DqnAgent::schedule_env_steps() const {
  if (dqn_.total_env_steps > 0) return static_cast<double>(dqn_.total_env_steps);
  return static_cast<double>(dqn_.learning_starts + total_updates_ * dqn_.train_every);
}

double DqnAgent::epsilon_at(int64_t env_steps) const {
  return epsilon_at(env_steps, schedule_env_steps());
}

double DqnAgent::epsilon_at(int64_t env_steps, double schedule_steps) const {
  const double span = dqn_.exploration_steps > 0 ? static_cast<double>(dqn_.exploration_steps)
                                                 : dqn_.exploration_fraction * schedule_steps;
  const int64_t into = std::max<int64_t>(0, env_steps - dqn_.exploration_start);
  const double frac = std::min(1.0, static_cast<double>(into) / span);
  return dqn_.epsilon_start + frac * (dqn_.epsilon_end - dqn_.epsilon_start);
}

void DqnAgent::collect(int64_t steps) {
  c10::InferenceMode inference;  // acting only reads Q-values: the cheapest dispatch
  const int E = envs_->num_envs();
  for (int64_t done = 0; done < steps; done += E) {
    epsilon_greedy(rng_, epsilon_at(env_steps_), static_cast<int>(num_actions_), actions_,
                   [&](const std::vector<int>& rows) {
                     if (E == 1) {
                       actions_[0] = greedy_action(envs_->observations());
                       return;
                     }
                     const auto q = q_values(*net_, obs_tensor(envs_->observations(), E));
                     const auto best = q.argmax(1).cpu();
                     for (int i : rows) actions_[i] = static_cast<int>(best[i].item<int64_t>());
                   });
    for (const auto& end : envs_->step(actions_.data())) {
      pending_returns_.push_back(end.episode_return);
      pending_lengths_.push_back(static_cast<double>(end.length));
      ++episodes_;
    }
    replay_->add(envs_->acted_observations(), actions_.data(), envs_->rewards(),
                 envs_->next_observations(), envs_->terminated(), envs_->truncated());
    env_steps_ += E;
  }
}

void DqnAgent::sync_target(double tau) {
  torch::NoGradGuard no_grad;
  const auto src = net_->parameters();
  auto dst = target_->parameters();
  for (size_t i = 0; i < src.size(); ++i) {
    if (tau >= 1.0)
      dst[i].copy_(src[i]);
    else
      dst[i].lerp_(src[i], tau);
  }
}

void DqnAgent::apply_support(const value::Bounds& b) {
  loss_->set_bounds(b.lo, b.hi);
  v_min_ = b.lo;
  v_max_ = b.hi;
}

torch::Tensor DqnAgent::update_loss() {
  // Between updates: the last update's targets may move the bins before this one.
  if (running_) apply_support(running_->bounds());
  if (env_steps_ < dqn_.learning_starts) collect(dqn_.learning_starts - env_steps_);
  collect(dqn_.train_every);
  if (env_steps_ - last_target_sync_ >= dqn_.target_update_every) {
    sync_target(dqn_.tau);
    last_target_sync_ = env_steps_ - env_steps_ % dqn_.target_update_every;
  }
  if (dqn_.prioritized) {
    // Importance-weight exponent annealed linearly to 1 over the run.
    const double frac = std::min(1.0, static_cast<double>(env_steps_) / schedule_env_steps());
    replay_->set_beta(dqn_.priority_beta + (1.0 - dqn_.priority_beta) * frac);
  }
  const int B = static_cast<int>(batch_size_);
  replay_->sample(B, rng_, batch_->view());
  const auto obs = obs_tensor(batch_->obs.data(), B);
  const auto next_obs = obs_tensor(batch_->next_obs.data(), B);
  const auto actions = torch::from_blob(batch_->actions.data(), {B}, torch::kLong).to(device_);
  const auto returns = torch::from_blob(batch_->returns.data(), {B}, torch::kFloat).to(device_);
  const auto discounts = torch::from_blob(batch_->discounts.data(), {B}, torch::kFloat).to(device_);

  // The bootstrap target reads only the target network (and, for double DQN, the online one
  // without gradient): with a helper lane it runs there, beside the online forward.
  BellmanTarget target;
  auto bootstrap = [&] {
    torch::NoGradGuard no_grad;
    const auto next_online = dqn_.double_dqn ? heads(*net_, next_obs) : torch::Tensor();
    target = bellman_target(*loss_, heads(*target_, next_obs), next_online, returns, discounts,
                            distributional_);
  };
  torch::Tensor out;
  run_side_by_side(lane_, bootstrap, [&] { out = heads(*net_, obs); });
  const torch::Tensor& y = target.scalar;
  record_targets(y);
  if (!dqn_.prioritized) {
    return distributional_ ? value::chosen_cross_entropy(out, actions, target.distribution)
                           : loss_->chosen_loss(out, actions, y);
  }
  // Prioritised replay weighs each sample's loss and needs its TD error (c51: its loss).
  torch::Tensor per_sample, td;
  if (distributional_) {
    per_sample = value::chosen_cross_entropy_rows(out, actions, target.distribution);
    td = per_sample.detach();
  } else {
    per_sample = loss_->chosen_rows(out, actions, y);
    torch::NoGradGuard no_grad;
    const auto chosen =
        out.detach().gather(1, actions.view({B, 1, 1}).expand({B, 1, head_outputs_})).squeeze(1);
    td = (loss_->value(chosen) - y).abs();
  }
  const auto td_cpu = td.to(torch::kFloat).cpu().contiguous();
  // A non-finite error leaves every priority as it was: the loss is then non-finite too, and the
  // trainer stops the run or rolls it back (the replay would refuse such priorities).
  const float* errors = td_cpu.data_ptr<float>();
  if (std::all_of(errors, errors + B, [](float e) { return std::isfinite(e); }))
    replay_->update_priorities(batch_->ids.data(), errors, B);
  const auto w = torch::from_blob(batch_->weights.data(), {B}, torch::kFloat).to(device_);
  return (per_sample * w.to(per_sample.scalar_type())).mean();
}

void DqnAgent::record_targets(const torch::Tensor& y) {
  // A batch of targets: a host loop costs less than launching reductions (and on CUDA, acting
  // already waits for the device every step).
  const auto h = y.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const float* p = h.data_ptr<float>();
  auto& t = targets_;
  for (int64_t i = 0; i < h.numel(); ++i) {
    const double v = p[i];
    t.lo = std::min(t.lo, v);
    t.hi = std::max(t.hi, v);
    t.outside += v < v_min_ || v > v_max_;
  }
  t.seen += static_cast<double>(h.numel());
  if (running_) running_->observe(p, h.numel());
}

Metrics DqnAgent::train_metrics() {
  Metrics m;
  m["env_steps"] = static_cast<double>(env_steps_);
  m["epsilon"] = epsilon_at(env_steps_);
  m["train/episodes_total"] = static_cast<double>(episodes_);
  if (!pending_returns_.empty()) {
    double r = 0.0, l = 0.0;
    for (double x : pending_returns_) r += x;
    for (double x : pending_lengths_) l += x;
    const double n = static_cast<double>(pending_returns_.size());
    m["train/return"] = r / n;
    m["train/length"] = l / n;
    m["train/episodes"] = n;
  }
  pending_returns_.clear();
  pending_lengths_.clear();
  const auto& t = targets_;
  if (t.seen > 0) {
    m["value/target_min"] = t.lo;
    m["value/target_max"] = t.hi;
    if (loss_->categorical()) {
      m["value/support_lo"] = v_min_;
      m["value/support_hi"] = v_max_;
      m["value/target_outside"] = t.outside / t.seen;
      // The share of the support the targets cover: a few hundredths means they all fall in a
      // bin or two, and the head cannot tell their values apart.
      m["value/support_used"] =
          std::max(0.0, std::min(t.hi, v_max_) - std::max(t.lo, v_min_)) / (v_max_ - v_min_);
    }
  }
  targets_ = {};
  return m;
}

Metrics DqnAgent::data_facts() const {
  return {{"data/num_actions", static_cast<double>(num_actions_)},
          {"data/obs_size", static_cast<double>(envs_->obs_size())},
          {"data/total_env_steps",
           static_cast<double>(dqn_.learning_starts + total_updates_ * dqn_.train_every)}};
}

void DqnAgent::save_state(Checkpoint& ckpt) const {
  ckpt.tensors["target"] = model_tensors(*target_.ptr());
  ckpt.tensors["agent"] = {
      {"replay", bytes_to_tensor(replay_->save_state())},
      {"envs", bytes_to_tensor(envs_->save_state())},
      {"rng", rng_to_tensor(rng_)},
      {"counters", torch::tensor({env_steps_, episodes_, last_target_sync_}, torch::kLong)},
      {"pending_returns", torch::tensor(pending_returns_, torch::kDouble)},
      {"pending_lengths", torch::tensor(pending_lengths_, torch::kDouble)},
      {"target_stats",
       torch::tensor({targets_.lo, targets_.hi, targets_.outside, targets_.seen}, torch::kDouble)}};
  if (running_) {
    // The averages, then the bounds in use: they lag the averages by the last update's batch.
    auto state = running_->state();
    state.insert(state.end(), {v_min_, v_max_});
    ckpt.tensors["agent"].emplace_back("running_support", torch::tensor(state, torch::kDouble));
  }
  ckpt.state["env_steps"] = env_steps_;
  ckpt.state["schedule_env_steps"] = schedule_env_steps();
}

void DqnAgent::load_state(const Checkpoint& ckpt, bool training) {
  auto target = ckpt.tensors.find("target");
  auto agent = ckpt.tensors.find("agent");
  if (target == ckpt.tensors.end() || agent == ckpt.tensors.end())
    throw InputError(ckpt.dir + ": not a dqn checkpoint (no target network or agent state)");
  const auto& a = agent->second;
  const std::string what = ckpt.dir + ": dqn state";
  const auto find = [&](const std::string& name) { return tensor_named(a, name, what); };
  const auto counters = find("counters");
  env_steps_ = counters[0].item<int64_t>();
  episodes_ = counters[1].item<int64_t>();
  last_target_sync_ = counters[2].item<int64_t>();
  if (running_) {
    const auto t = find("running_support").to(torch::kDouble).contiguous();
    std::vector<double> state(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    if (state.size() != 5 || !std::isfinite(state[3]) || !std::isfinite(state[4]) ||
        !(state[3] < state[4]))
      throw InputError(what + ": running_support: expected 3 averages and bounds lo < hi");
    running_->load({state.begin(), state.begin() + 3}, what);
    apply_support({state[3], state[4]});
  }
  if (!training) return;
  load_model_tensors(*target_, target->second, ckpt.dir + "/target.safetensors");
  replay_->load_state(tensor_to_bytes(find("replay")));
  envs_->load_state(tensor_to_bytes(find("envs")));
  rng_ = rng_from_tensor(find("rng"), what);
  const auto returns = find("pending_returns").contiguous();
  const auto lengths = find("pending_lengths").contiguous();
  pending_returns_.assign(returns.data_ptr<double>(), returns.data_ptr<double>() + returns.numel());
  pending_lengths_.assign(lengths.data_ptr<double>(), lengths.data_ptr<double>() + lengths.numel());
  // A checkpoint without target statistics starts a fresh interval of them.
  targets_ = {};
  if (const auto* stats = find_tensor(a, "target_stats")) {
    const auto t = stats->to(torch::kDouble).contiguous();
    if (t.numel() != 4) throw InputError(what + ": target_stats: expected 4 values");
    const double* v = t.data_ptr<double>();
    targets_ = {v[0], v[1], v[2], v[3]};
  }
  // A resume with another train.steps moves the schedules that span the run under a run already
  // part way through them (epsilon jumped from its end back up); allowed, but said. Epsilon's
  // spans the run only without dqn.exploration_steps, the importance weights' only with
  // prioritised replay.
  const double was = ckpt.state.value("schedule_env_steps", schedule_env_steps());
  const bool epsilon_moves = dqn_.exploration_steps == 0;
  if (was == schedule_env_steps() || (!epsilon_moves && !dqn_.prioritized)) return;
  const std::string which = epsilon_moves && dqn_.prioritized
                                ? "the exploration and prioritised-replay schedules now span "
                            : epsilon_moves ? "the exploration schedule now spans "
                                            : "the prioritised-replay schedule now spans ";
  std::string epsilon;
  if (epsilon_moves) {
    const double before = epsilon_at(env_steps_, was);
    epsilon =
        stoch::str(": epsilon at step ", env_steps_, " is now ",
                   format_number(epsilon_at(env_steps_), 4), ", was ", format_number(before, 4));
  }
  log::warn(stoch::str("dqn: ", which, format_number(schedule_env_steps(), 12),
                       " environment steps, not ", format_number(was, 12),
                       " (train.steps changed with dqn.total_env_steps 0)", epsilon,
                       "; set dqn.total_env_steps: ", format_number(was, 12), " to keep ",
                       epsilon_moves && dqn_.prioritized ? "them" : "it"));
}

}  // namespace stoch::rl
