// One optimiser step of the TrainingLoop and what follows it: the update's verdict, the log
// line, evaluation, hooks, checkpoints.
#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "train/training_loop.h"

namespace stoch::train {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

bool every(int64_t done, int64_t interval, int64_t total) {
  return (interval > 0 && done % interval == 0) || done == total;
}

}  // namespace

void TrainingLoop::zero_grad() {
  zero_ ? zero_->zero_grad() : optim_->zero_grad();
}

std::optional<int> TrainingLoop::train_step(MicroBatchRunner& micro_batches) {
  const int64_t step = state_->step, total = cfg_.train.steps;
  const auto t0 = Clock::now();
  // Ranks agree on stopping (signals reach them at different moments): the vote starts here
  // and is read at the end of the step, so it costs no waiting of its own.
  torch::Tensor stop_vote;
  Distributed::Pending stop_pending;
  if (dist_) {
    stop_vote = torch::full({1}, stop_requested(), torch::kInt);
    stop_pending = dist_->all_reduce_max_async(stop_vote);
  }
  double lr = cfg_.optim.lr * rollbacks_.lr_scale * lr_multiplier(cfg_.schedule, step, total);
  if (step + 1 == cfg_.train.fault_lr_spike_step && rollbacks_.count == 0) lr *= 1e30;
  zero_grad();
  const torch::Tensor step_loss = micro_batches.run(step);
  if (step + 1 == cfg_.train.fault_grad_spike_step) {
    torch::NoGradGuard no_grad;
    for (auto& p : model_->parameters())
      if (p.grad().defined()) p.mutable_grad().mul_(1e6);
  }
  if (step + 1 == cfg_.train.fault_grad_inf_step) {
    torch::NoGradGuard no_grad;
    for (auto& p : model_->parameters())
      if (p.grad().defined()) p.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  }
  if (zero_) zero_->reduce_gradients();
  const double max_norm =
      cfg_.train.grad_clip > 0 ? cfg_.train.grad_clip : std::numeric_limits<double>::infinity();
  // The guards judge the norm before clipping; without clipping it is computed for them. The
  // default `stop` reads only the loss, so a run without clipping pays no extra pass over the
  // gradients; its checkpoints check the weights instead (weights_finite).
  torch::Tensor grad_norm;
  if (cfg_.train.grad_clip > 0 || guard_ || cfg_.train.on_nonfinite == "rollback")
    grad_norm =
        zero_ ? zero_->clip(max_norm) : optim::clip_grad_norm(model_->parameters(), max_norm);
  bool skipped = false;
  if (const auto code = judge_update(step_loss, grad_norm, &skipped)) return code;
  if (!skipped) zero_ ? zero_->step(lr) : optim_->step(lr);
  const double dt = seconds_since(t0);
  state_->finish_step(step_loss, dt, units_per_step_, skipped);
  recent_step_s_ = recent_step_s_ == 0.0 ? dt : 0.9 * recent_step_s_ + 0.1 * dt;
  const int64_t done = state_->step;

  if (every(done, cfg_.log.every, total))
    if (const auto code = log_interval(lr, grad_norm)) return code;
  if (main_rank_ && every(done, cfg_.train.eval_every, total)) {
    evaluate(done);
    model_->train();
  }
  // Sharded gradients are a share on each rank: a step that runs hooks gathers their squares
  // first, every rank taking part, for the hooks (on rank 0) that read gradient norms.
  std::map<std::string, double> grad_squares;
  bool hooks_due = false;
  for (size_t i = 0; i < hooks_.size(); ++i)
    hooks_due = hooks_due || every(done, cfg_.hooks[i].every, total);
  if (zero_ && hooks_due) grad_squares = zero_->grad_squares();
  for (size_t i = 0; i < hooks_.size() && main_rank_; ++i)
    if (every(done, cfg_.hooks[i].every, total))
      run_hook(i, done, grad_squares.empty() ? nullptr : &grad_squares);
  int sig = stop_requested();
  if (dist_) {
    stop_pending.wait();
    sig = stop_vote.item<int>();
  }
  const bool saving = sig || every(done, cfg_.train.ckpt_every, total);
  // Unclipped gradients can be non-finite under a finite loss; such weights never reach a
  // checkpoint, where a resume would start from them.
  if (saving && !grad_norm.defined() && !weights_finite()) {
    log::error(stoch::str("step ", done,
                          ": the weights are not finite (a non-finite gradient "
                          "under a finite loss); stopping without writing their checkpoint "
                          "(lower optim.lr, set train.grad_clip, or set train.on_nonfinite: "
                          "rollback)"));
    return kExitFailure;
  }
  if (sig) {
    if (main_rank_)
      log::warn(stoch::str("received signal ", sig, ": writing a checkpoint of step ", done,
                           " and stopping"));
    save(done);
    return exit_code_for_signal(sig);
  }
  if (saving) save(done);
  return std::nullopt;
}

bool TrainingLoop::weights_finite() {
  torch::NoGradGuard no_grad;
  for (const auto& p : model_->parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

std::optional<int> TrainingLoop::judge_update(const torch::Tensor& step_loss,
                                              const torch::Tensor& grad_norm, bool* skipped) {
  const int64_t step = state_->step;
  auto mean_loss =
      (step_loss / static_cast<double>(state_->grad_accum)).to(torch::kDouble).reshape({1});
  if (dist_) dist_->all_reduce_sum(mean_loss);  // every rank decides alike
  const double loss_now = mean_loss.item<double>() / static_cast<double>(W_);
  const double norm_now = grad_norm.defined() ? grad_norm.item<double>() : 0.0;
  // Checked every step, before the update: no update from a non-finite step reaches the weights.
  if (!(std::isfinite(loss_now) && std::isfinite(norm_now)))
    return stop_or_roll_back(grad_norm.defined()
                                 ? stoch::str("loss ", loss_now, ", gradient norm ", norm_now)
                                 : stoch::str("loss ", loss_now));
  std::string why;
  if (guard_ && guard_->skip(loss_now, norm_now, &why)) {
    *skipped = true;
    if (main_rank_) log::warn(stoch::str("step ", step + 1, ": update skipped (", why, ")"));
  }
  return std::nullopt;
}

int TrainingLoop::stop_or_roll_back(const std::string& why) {
  const int64_t failed = state_->step + 1;
  if (cfg_.train.on_nonfinite == "stop") {
    log::error(stoch::str("step ", failed, ": ", why,
                          "; stopping before its update, with the checkpoints written so far "
                          "(lower optim.lr, or set train.on_nonfinite: rollback)"));
    return kExitFailure;
  }
  if (rollbacks_.count >= cfg_.train.max_rollbacks) {
    log::error(stoch::str("step ", failed, ": ", why, "; no rollbacks left (", rollbacks_.count,
                          " of train.max_rollbacks = ", cfg_.train.max_rollbacks, "); stopping"));
    return kExitFailure;
  }
  Rollbacks next = rollbacks_;
  ++next.count;
  next.lr_scale *= cfg_.train.rollback_lr_factor;
  if (main_rank_) next.write(run_dir_, failed, why);
  if (dist_) dist_->barrier();
  // The checkpoint of the step before may hold the update that broke the weights (trainer.cpp).
  if (main_rank_)
    log::warn(stoch::str(
        "step ", failed, ": ", why, "; rolling back to the newest complete checkpoint before step ",
        failed - 1, " with the learning rate times ", format_number(next.lr_scale, 4),
        " (rollback ", next.count, " of ", cfg_.train.max_rollbacks, ")"));
  failed_step_ = failed;
  return kRolledBack;
}

std::optional<int> TrainingLoop::log_interval(double lr, const torch::Tensor& grad_norm) {
  const int64_t done = state_->step, total = cfg_.train.steps;
  auto& interval = state_->interval;
  double loss_sum = 0.0;
  if (dist_) {
    // The mean over all ranks: one all-reduce per logged interval, not per step.
    const auto summed = interval.loss.to(torch::kDouble).reshape({1});
    dist_->all_reduce_sum(summed);
    loss_sum = summed.item<double>();
  } else {
    loss_sum = interval.loss.item<double>();
  }
  const double loss = loss_sum / static_cast<double>(interval.steps * W_);
  const double rate = static_cast<double>(interval.steps * units_per_step_) / interval.train_s;
  Metrics m = {{"loss", loss}, {"lr", lr}, {rate_name_, rate}, {"elapsed_s", state_->elapsed_s}};
  if (grad_norm.defined()) m["grad_norm"] = grad_norm.item<double>();
  if (guard_) m["skipped"] = static_cast<double>(interval.skipped);
  const double mfu = peak_flops_ > 0 ? rate * flops_per_unit_ / peak_flops_ : 0.0;
  if (mfu > 0) m["mfu"] = mfu;
  if (device_.is_cuda()) m["gpu_mem_peak_gb"] = peak_device_memory_gb(device_);
  for (const auto& [k, v] : task_->train_metrics()) m[k] = v;
  write_metrics(done, "train", m);
  if (!std::isfinite(loss)) {
    log::error(stoch::str("loss is ", loss, " at step ", done,
                          "; stopping (lower optim.lr, or set train.on_nonfinite: rollback)"));
    return kExitFailure;
  }
  const std::string unit = rate_name_.substr(0, rate_name_.find("_per_s"));
  const std::string line =
      stoch::str("step ", done, "/", total, " loss ", format_number(loss, 4), " lr ",
                 format_number(lr, 3), " ", format_number(rate, 4), " ", unit, "/s",
                 mfu > 0 ? stoch::str(" mfu ", format_number(100 * mfu, 3), "%") : "", " eta ",
                 format_duration(recent_step_s_ * static_cast<double>(total - done)));
  if (done % cfg_.log.console_every == 0 || done == total) {
    log::info(line);
  } else if (main_rank_ && seconds_since(last_progress_) > 0.25) {
    log::progress(line);
    last_progress_ = Clock::now();
  }
  state_->close_interval();
  return std::nullopt;
}

void TrainingLoop::evaluate(int64_t step) {
  last_eval_ = task_->evaluate(step);
  write_metrics(step, "eval", last_eval_);
  std::string line = stoch::str("eval step ", step);
  for (const auto& [k, v] : last_eval_) line += stoch::str(" ", k, "=", format_number(v, 5));
  log::info(line);
}

void TrainingLoop::run_hook(size_t i, int64_t step,
                            const std::map<std::string, double>* grad_squares) {
  torch::NoGradGuard no_grad;
  model_->eval();
  const hooks::HookContext ctx{step, model_, task_->lm_view(), task_->value_view(), grad_squares};
  const auto t0 = Clock::now();
  auto m = hooks_[i]->run(ctx);
  // What the diagnostic cost, so its overhead on training can be read from the metrics.
  m["diag/seconds/" + cfg_.hooks[i].name] = seconds_since(t0);
  write_metrics(step, "diag", m);
  model_->train();
}

}  // namespace stoch::train
