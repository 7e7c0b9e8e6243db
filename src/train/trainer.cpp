#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "core/cpu_isa.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/signals.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "train/distributed.h"
#include "train/gradient_buckets.h"
#include "train/micro_batches.h"
#include "train/rank_state.h"
#include "train/rollbacks.h"
#include "train/update_guard.h"
#include "train/zero.h"

namespace stoch::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<std::pair<std::string, torch::Tensor>> named_params(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

std::map<std::string, std::vector<int64_t>> param_shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, p] : named_params(m)) out[name] = p.sizes().vec();
  return out;
}

}  // namespace

TensorList model_tensors(torch::nn::Module& model) {
  TensorList out;
  for (const auto& p : model.named_parameters()) out.emplace_back("param." + p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back("buffer." + b.key(), b.value());
  return out;
}

void load_model_tensors(torch::nn::Module& model, const TensorList& saved,
                        const std::string& origin) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : model_tensors(model)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw InputError(stoch::str(origin, ": no model tensor ", name));
    if (it->second.sizes() != dst.sizes())
      throw InputError(stoch::str(origin, ": tensor ", name, " has shape ", it->second.sizes(),
                                  " but the model expects ", dst.sizes(),
                                  " (was the model's config changed?)"));
    dst.copy_(it->second);
  }
}

namespace {

// train_once's answer when the run rolled back: train again from the newest checkpoint.
constexpr int kRolledBack = -1;

int train_once(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
               const std::function<void()>& on_ready) {
  const WorldEnv world = read_world_env();
  const int64_t W = world.world_size;
  // Rank 0 alone logs, writes metrics and checkpoints, evaluates and runs hooks; the others
  // say only what goes wrong.
  const bool main_rank = world.rank == 0;
  if (!main_rank) log::init("", log::Level::kWarn);
  // Parallel micro-batch workers share the cores: each runs its kernels single-threaded.
  configure_threads(cfg.train.cpu_workers > 1 ? 1 : threads_per_rank(cfg.run.threads, world));
  // The same seed on every rank: the model starts identical everywhere.
  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  c10::Device device = resolve_device(cfg.run.device);
  // One GPU per rank of this machine (NCCL).
  if (W > 1 && device.is_cuda())
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank));
  const bool bf16 = use_bf16_autocast(cfg.run.precision, device);
  if (cfg.train.cpu_workers > 1 && !device.is_cpu())
    throw InputError(stoch::str("train.cpu_workers: ", cfg.train.cpu_workers,
                                " workers need run.device cpu, not ", device.str()));

  if (W > 1) data_parallel_backend(device, cfg.dist.backend);
  const auto& entry = registry<TaskEntry>().get(cfg.task, "task");
  // Before anything large is allocated: a run that cannot fit is refused, not killed later.
  if (entry.estimate_memory) {
    const MemoryEstimate need = entry.estimate_memory(cfg, W);
    check_memory_fits(need, world.local_world_size, device);
    log::info("memory: at least " + need.describe() + (W > 1 ? " per rank" : ""));
  }
  auto task = entry.make(cfg, device);
  if (!resume) task->start_fresh();
  if (!task->split_over_ranks(W))
    throw InputError(stoch::str("WORLD_SIZE=", W, ": task ", cfg.task,
                                " trains in one process only; drop --nproc (or torchrun)"));
  // Dropout masks differ between ranks, as they differ between micro-batches of one process.
  if (world.rank > 0)
    torch::manual_seed(static_cast<uint64_t>(cfg.run.seed) +
                       0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(world.rank));
  torch::nn::Module& model = task->model();
  // Sharded runs make their optimiser once the ranks have joined.
  const bool sharded = W > 1 && cfg.dist.shard != "none";
  std::unique_ptr<AdamW> optim;
  if (!sharded) optim = std::make_unique<AdamW>(named_params(model), cfg.optim);
  std::unique_ptr<ShardedAdamW> zero;
  CheckpointStore store(run_dir);
  std::vector<std::unique_ptr<hooks::Hook>> hook_list;
  for (const auto& spec : cfg.hooks) {
    const auto& entry = registry<hooks::HookEntry>().get(spec.name, "hooks.name");
    if ((entry.needs == "lm" && !task->lm_view()) ||
        (entry.needs == "value" && !task->value_view()))
      throw InputError(stoch::str("hooks: ", spec.name, " needs a ",
                                  entry.needs == "lm" ? "language model" : "value network",
                                  ", but task is ", cfg.task));
    hook_list.push_back(entry.make(*spec.params));
  }
  if (resume) check_resume_world_size(run_dir, W, cfg.train.grad_accum);
  if (on_ready && main_rank) on_ready();
  // Rank 0 wrote it before the ranks last met, so every rank reads the same.
  const Rollbacks rollbacks = Rollbacks::read(run_dir);
  const bool roll_back_on_nonfinite = cfg.train.on_nonfinite == "rollback";

  int64_t start_step = 0;
  // Per rank; a resume on another number of ranks splits the same micro-batches per step.
  int64_t accum = cfg.train.grad_accum;
  int64_t first_micro = 0, first_units = 0;  // consumed before start_step
  TensorList saved_optim;
  double elapsed_before = 0.0;
  // The logging interval in progress: a checkpoint between two log lines carries it, so that
  // the resumed run's next line covers the same steps as the uninterrupted run's.
  double interval_train_s = 0.0;
  int64_t interval_steps = 0;
  int64_t interval_skipped = 0;  // updates the guard skipped
  std::optional<UpdateGuard> guard;
  if (cfg.train.skip_update_z > 0) guard.emplace(cfg.train.skip_update_z);
  torch::Tensor interval_loss = torch::zeros({}, torch::TensorOptions().device(device));
  if (resume) {
    if (auto ckpt = store.load_latest()) {
      accum = resume_grad_accum(ckpt->dir, ckpt->state, W, cfg.train.grad_accum);
      const int64_t saved_world = ckpt->state.value("world_size", int64_t{1});
      if (saved_world != W)
        log::info(stoch::str("world size ", saved_world, " -> ", W, ": grad_accum ",
                             ckpt->state.value("grad_accum", cfg.train.grad_accum), " -> ", accum,
                             " per rank keeps ", accum * W, " micro-batches per step"));
      load_model_tensors(model, ckpt->tensors["model"], ckpt->dir + "/model.safetensors");
      saved_optim = whole_optimizer_state(*ckpt, param_shapes(model));
      restore_rng(ckpt->tensors["rng"], device, world.rank, saved_world != W);
      task->load_state(*ckpt);
      for (size_t i = 0; i < hook_list.size(); ++i) {
        auto it = ckpt->tensors.find(stoch::str("hook", i));
        if (it != ckpt->tensors.end()) hook_list[i]->load_state(it->second);
      }
      start_step = ckpt->state.at("step").get<int64_t>();
      first_micro = ckpt->state.value("micro_batches", start_step * accum * W);
      first_units = ckpt->state.value("tokens_seen", int64_t{0});
      elapsed_before = ckpt->state.value("elapsed_s", 0.0);
      interval_train_s = ckpt->state.value("interval_train_s", 0.0);
      interval_steps = ckpt->state.value("interval_steps", int64_t{0});
      interval_skipped = ckpt->state.value("interval_skipped", int64_t{0});
      if (guard && ckpt->state.contains("update_guard")) guard->load(ckpt->state["update_guard"]);
      // The sum over ranks, held by rank 0 (the log line sums over ranks again).
      if (main_rank) interval_loss.fill_(ckpt->state.value("interval_loss", 0.0));
      log::info(stoch::str("resumed from ", ckpt->dir, " (step ", start_step, ")"));
    } else {
      if (main_rank) log::warn("no complete checkpoint found: starting from step 0");
      task->start_fresh();
    }
    if (main_rank) truncate_metrics_after(run_dir + "/metrics.jsonl", start_step);
  }

  // Joined only now, after every check that can refuse the run: a rank that fails before
  // this point cannot leave the others waiting for it inside a collective.
  std::unique_ptr<Distributed> dist;
  std::unique_ptr<GradientBuckets> buckets;
  if (W > 1) {
    dist = std::make_unique<Distributed>(world, device, cfg.dist,
                                         Rendezvous{to_yaml(cfg, false), run_dir, rollbacks.count});
    const auto step_here = torch::full({1}, start_step, torch::kLong);
    const auto steps = dist->all_gather(step_here);
    for (int64_t r = 0; r < W; ++r)
      if (steps[static_cast<size_t>(r)].item<int64_t>() != start_step)
        throw std::runtime_error(stoch::str("rank ", r, " starts at step ",
                                            steps[static_cast<size_t>(r)].item<int64_t>(),
                                            " but rank ", world.rank, " at step ", start_step,
                                            ": the ranks found different checkpoints"));
    // Identical already (same seed); made certain, as DistributedDataParallel does.
    if (start_step == 0) {
      std::vector<torch::Tensor> state;
      for (auto& [name, t] : model_tensors(model)) state.push_back(t.detach());
      dist->broadcast_from_main(state);
    }
    if (sharded)
      zero = std::make_unique<ShardedAdamW>(*dist, named_params(model), cfg.optim,
                                            cfg.dist.shard == "gradients");
    // Gradient sharding reduce-scatters after the backward passes instead.
    if (cfg.dist.shard != "gradients") {
      std::vector<torch::Tensor> trained;
      for (const auto& p : model.parameters())
        if (p.requires_grad()) trained.push_back(p);
      buckets = std::make_unique<GradientBuckets>(
          *dist, trained, static_cast<int64_t>(cfg.train.allreduce_bucket_mb * (1 << 20)));
    }
    log::info(stoch::str("data parallel: ", W, " ranks (", dist->backend_name(), "), gradients ",
                         buckets ? stoch::str("all-reduced in ", buckets->num_buckets(), " buckets")
                                 : std::string("reduce-scattered")));
  }
  const double full_mb = static_cast<double>(unsharded_state_bytes(named_params(model))) / 1e6;
  if (zero)
    log::info(stoch::str("optimizer state: ", format_number(zero->state_bytes() / 1e6, 4),
                         " MB on this rank, 1/", W, " of ", format_number(full_mb, 4), " MB (",
                         cfg.dist.shard, " sharding)"));
  else
    log::info(stoch::str("optimizer state: ", format_number(full_mb, 4), " MB on every rank"));
  if (!saved_optim.empty()) {
    if (zero)
      zero->load_state(saved_optim);
    else
      optim->load_state(saved_optim);
    saved_optim.clear();
  }

  std::unique_ptr<MetricsWriter> metrics;
  if (main_rank) {
    metrics = std::make_unique<MetricsWriter>(run_dir + "/metrics.jsonl",
                                              cfg.log.tensorboard ? run_dir + "/tb" : "");
    if (resume) metrics->restart_after(start_step);
  }
  const auto write_metrics = [&](int64_t step, const std::string& split, const Metrics& m) {
    if (metrics) metrics->write(step, split, m);
  };
  const int64_t total = cfg.train.steps;
  const int64_t units_per_step = task->units_per_micro() * accum * W;
  const std::string rate_name = task->rate_name();
  // Model FLOP/s against the peak: a GPU per rank; ranks on the CPU share one machine.
  const double peak_flops =
      cfg.run.peak_tflops * 1e12 * (device.is_cuda() ? static_cast<double>(W) : 1.0);
  const double flops_per_unit = task->flops_per_unit();

  if (start_step == 0) {
    const Metrics facts = task->data_facts();
    if (!facts.empty()) write_metrics(0, "data", facts);
  }
  log::info(stoch::str("device ", device.str(), bf16 ? " (bf16 autocast)" : " (fp32)", ", ",
                       at::get_num_threads(), " threads on ", cpu_isa_summary(), "; ",
                       units_per_step, " ", rate_name.substr(0, rate_name.find("_per_s")),
                       " per step; steps ", start_step, " -> ", total));

  // Every rank calls it (their RNG states are gathered); rank 0 writes, and the others wait
  // for it, so a stop signal ends every rank after the checkpoint is complete.
  const auto save = [&](int64_t step) {
    Checkpoint c;
    c.step = step;
    c.tensors["rng"] = rng_tensors(device, dist.get());
    const auto pending_loss = interval_loss.to(torch::kDouble).reshape({1});
    if (dist) dist->all_reduce_sum(pending_loss);
    // A sharded run's optimiser state is written by every rank, each its own shard, into the
    // folder rank 0 then completes and renames.
    std::vector<std::string> staged;
    if (zero) {
      if (main_rank) store.prepare(step);
      dist->barrier();
      for (int64_t r = 0; r < W; ++r) staged.push_back(shard_file_stem(r) + ".safetensors");
      write_safetensors(store.staging(step) + "/" + staged[static_cast<size_t>(world.rank)],
                        zero->shard_state());
      dist->barrier();
    }
    if (!main_rank) {
      dist->barrier();
      return;
    }
    c.tensors["model"] = model_tensors(model);
    if (optim) c.tensors["optimizer"] = optim->state();
    c.state = {{"step", step},
               {"micro_batches", first_micro + (step - start_step) * accum * W},
               {"micro_batches_per_step", accum * W},
               {"grad_accum", accum},
               {"tokens_seen", first_units + (step - start_step) * units_per_step},
               {"elapsed_s", elapsed_before},
               {"task", cfg.task},
               {"world_size", W},
               {"interval_steps", interval_steps},
               {"interval_train_s", interval_train_s},
               {"interval_loss", pending_loss.item<double>()},
               {"interval_skipped", interval_skipped}};
    if (guard) c.state["update_guard"] = guard->state();
    if (zero) c.state["optimizer_layout"] = zero->layout().to_json();
    task->save_state(c);
    for (size_t i = 0; i < hook_list.size(); ++i) {
      auto s = hook_list[i]->state();
      if (!s.empty()) c.tensors[stoch::str("hook", i)] = std::move(s);
    }
    const std::string dir =
        store.save(c, static_cast<int>(cfg.train.keep_last), cfg.train.keep_every, staged);
    log::info(stoch::str("checkpoint ", dir));
    if (dist) dist->barrier();
  };

  Metrics last_eval;
  const auto evaluate = [&](int64_t step) {
    last_eval = task->evaluate(step);
    write_metrics(step, "eval", last_eval);
    std::string line = stoch::str("eval step ", step);
    for (const auto& [k, v] : last_eval) line += stoch::str(" ", k, "=", format_number(v, 5));
    log::info(line);
  };

  if (start_step >= total) {
    log::info(stoch::str("nothing to do: the run already reached train.steps = ", total));
    return kExitOk;
  }

  const auto run_hook = [&](size_t i, int64_t step) {
    torch::NoGradGuard no_grad;
    model.eval();
    const hooks::HookContext ctx{step, &model, task->lm_view(), task->value_view()};
    const auto t0 = Clock::now();
    auto m = hook_list[i]->run(ctx);
    // What the diagnostic cost, so its overhead on training can be read from the metrics.
    m["diag/seconds/" + cfg.hooks[i].name] = seconds_since(t0);
    write_metrics(step, "diag", m);
    model.train();
  };
  // Every hook also measures the untrained model: the at-initialisation baseline.
  if (start_step == 0 && main_rank)
    for (size_t i = 0; i < hook_list.size(); ++i) run_hook(i, 0);

  MicroBatchRunner micro_batches(*task, accum, cfg.train.cpu_workers, bf16, device,
                                 DataShard{world.rank, W, buckets.get(), start_step, first_micro});
  install_stop_handlers();
  model.train();
  auto last_progress = Clock::now() - std::chrono::seconds(1);
  double recent_step_s = 0.0;

  for (int64_t step = start_step; step < total; ++step) {
    const auto t0 = Clock::now();
    // Ranks agree on stopping (signals reach them at different moments): the vote starts
    // here and is read at the end of the step, so it costs no waiting of its own.
    torch::Tensor stop_vote;
    Distributed::Pending stop_pending;
    if (dist) {
      stop_vote = torch::full({1}, stop_requested(), torch::kInt);
      stop_pending = dist->all_reduce_max_async(stop_vote);
    }
    double lr = cfg.optim.lr * rollbacks.lr_scale * lr_multiplier(cfg.schedule, step, total);
    if (step + 1 == cfg.train.fault_lr_spike_step && rollbacks.count == 0) lr *= 1e30;
    zero ? zero->zero_grad() : optim->zero_grad();
    const torch::Tensor step_loss = micro_batches.run(step);
    if (step + 1 == cfg.train.fault_grad_spike_step) {
      torch::NoGradGuard no_grad;
      for (auto& p : model.parameters())
        if (p.grad().defined()) p.mutable_grad().mul_(1e6);
    }
    torch::Tensor grad_norm;
    if (zero) zero->reduce_gradients();
    const double max_norm =
        cfg.train.grad_clip > 0 ? cfg.train.grad_clip : std::numeric_limits<double>::infinity();
    // The guards judge the norm before clipping; without clipping it is computed for them.
    if (cfg.train.grad_clip > 0 || guard || roll_back_on_nonfinite)
      grad_norm = zero ? zero->clip(max_norm) : clip_grad_norm(model.parameters(), max_norm);
    bool skipped = false;
    if (guard || roll_back_on_nonfinite) {
      auto mean_loss = (step_loss / static_cast<double>(accum)).to(torch::kDouble).reshape({1});
      if (dist) dist->all_reduce_sum(mean_loss);  // every rank decides alike
      const double loss_now = mean_loss.item<double>() / static_cast<double>(W);
      const double norm_now = grad_norm.item<double>();
      if (roll_back_on_nonfinite && !(std::isfinite(loss_now) && std::isfinite(norm_now))) {
        const std::string why = stoch::str("loss ", loss_now, ", gradient norm ", norm_now);
        if (rollbacks.count >= cfg.train.max_rollbacks) {
          log::error(
              stoch::str("step ", step + 1, ": ", why, "; no rollbacks left (", rollbacks.count,
                         " of train.max_rollbacks = ", cfg.train.max_rollbacks, "); stopping"));
          return kExitFailure;
        }
        Rollbacks next = rollbacks;
        ++next.count;
        next.lr_scale *= cfg.train.rollback_lr_factor;
        if (main_rank) next.write(run_dir, step + 1, why);
        if (dist) dist->barrier();
        if (main_rank)
          log::warn(stoch::str("step ", step + 1, ": ", why,
                               "; rolling back to the newest complete "
                               "checkpoint with the learning rate times ",
                               format_number(next.lr_scale, 4), " (rollback ", next.count, " of ",
                               cfg.train.max_rollbacks, ")"));
        return kRolledBack;
      }
      std::string why;
      if (guard && guard->skip(loss_now, norm_now, &why)) {
        skipped = true;
        ++interval_skipped;
        if (main_rank) log::warn(stoch::str("step ", step + 1, ": update skipped (", why, ")"));
      }
    }
    if (!skipped) zero ? zero->step(lr) : optim->step(lr);
    interval_loss += step_loss / static_cast<double>(accum);
    const int64_t done = step + 1;
    ++interval_steps;
    const double dt = seconds_since(t0);
    interval_train_s += dt;
    elapsed_before += dt;
    recent_step_s = recent_step_s == 0.0 ? dt : 0.9 * recent_step_s + 0.1 * dt;

    if (done % cfg.log.every == 0 || done == total) {
      double loss_sum = 0.0;
      if (dist) {
        // The mean over all ranks: one all-reduce per logged interval, not per step.
        const auto summed = interval_loss.to(torch::kDouble).reshape({1});
        dist->all_reduce_sum(summed);
        loss_sum = summed.item<double>();
      } else {
        loss_sum = interval_loss.item<double>();
      }
      const double loss = loss_sum / static_cast<double>(interval_steps * W);
      const double rate = static_cast<double>(interval_steps * units_per_step) / interval_train_s;
      Metrics m = {{"loss", loss}, {"lr", lr}, {rate_name, rate}, {"elapsed_s", elapsed_before}};
      if (grad_norm.defined()) m["grad_norm"] = grad_norm.item<double>();
      if (guard) m["skipped"] = static_cast<double>(interval_skipped);
      const double mfu = peak_flops > 0 ? rate * flops_per_unit / peak_flops : 0.0;
      if (mfu > 0) m["mfu"] = mfu;
      if (device.is_cuda()) m["gpu_mem_peak_gb"] = peak_device_memory_gb(device);
      for (const auto& [k, v] : task->train_metrics()) m[k] = v;
      write_metrics(done, "train", m);
      if (!std::isfinite(loss)) {
        log::error(stoch::str("loss is ", loss, " at step ", done,
                              "; stopping (lower optim.lr, or set train.on_nonfinite: rollback)"));
        return kExitFailure;
      }
      const std::string line = stoch::str(
          "step ", done, "/", total, " loss ", format_number(loss, 4), " lr ", format_number(lr, 3),
          " ", format_number(rate, 4), " ", rate_name.substr(0, rate_name.find("_per_s")), "/s",
          mfu > 0 ? stoch::str(" mfu ", format_number(100 * mfu, 3), "%") : "", " eta ",
          format_duration(recent_step_s * static_cast<double>(total - done)));
      if (done % cfg.log.console_every == 0 || done == total) {
        log::info(line);
      } else if (main_rank && seconds_since(last_progress) > 0.25) {
        log::progress(line);
        last_progress = Clock::now();
      }
      interval_loss.zero_();
      interval_steps = 0;
      interval_skipped = 0;
      interval_train_s = 0.0;
    }

    if (main_rank &&
        ((cfg.train.eval_every > 0 && done % cfg.train.eval_every == 0) || done == total)) {
      evaluate(done);
      model.train();
    }
    for (size_t i = 0; i < hook_list.size() && main_rank; ++i)
      if (done % cfg.hooks[i].every == 0 || done == total) run_hook(i, done);
    int sig = stop_requested();
    if (dist) {
      stop_pending.wait();
      sig = stop_vote.item<int>();
    }
    if (sig) {
      if (main_rank)
        log::warn(stoch::str("received signal ", sig, ": writing a checkpoint of step ", done,
                             " and stopping"));
      save(done);
      return exit_code_for_signal(sig);
    }
    if ((cfg.train.ckpt_every > 0 && done % cfg.train.ckpt_every == 0) || done == total) save(done);
  }

  const std::string summary = task->summary(last_eval);
  if (!summary.empty()) log::info(summary);
  log::info(stoch::str("done: ", total, " steps in ", format_duration(elapsed_before),
                       " of training; run dir ", run_dir));
  return kExitOk;
}

}  // namespace

int run_training(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
                 const std::function<void()>& on_ready) {
  int code = train_once(cfg, run_dir, resume, on_ready);
  // The run directory, its lock and its log file are set up already.
  while (code == kRolledBack) code = train_once(cfg, run_dir, /*resume=*/true, {});
  return code;
}

}  // namespace stoch::train
