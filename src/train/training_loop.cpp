#include "train/training_loop.h"

#include <limits>

#include "core/cpu_isa.h"
#include "core/cpus.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/signals.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "core/torch/model_tensors.h"
#include "train/rank_state.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace stoch::train {
namespace {

// A checkpoint whose files verify can still hold state this build cannot take (another version's
// replay buffer, a hand-edited state.json or tensor): the message names the checkpoint, and
// LibTorch's refusal of a tensor is bad input too, not a crash.
void naming_checkpoint(const std::string& dir, const std::function<void()>& load) {
  try {
    load();
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (what.find(dir) != std::string::npos) throw;
    throw InputError(stoch::str(dir, ": ", what));
  } catch (const c10::Error& e) {
    throw InputError(stoch::str(dir, ": ", e.what_without_backtrace()));
  }
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

TrainingLoop::TrainingLoop(ExperimentConfig& cfg, std::string run_dir, bool resume)
    : cfg_(cfg), run_dir_(std::move(run_dir)), resume_(resume), store_(run_dir_) {
  set_up();
}

TrainingLoop::~TrainingLoop() {
  if (restore_threads_ > 0) at::set_num_threads(restore_threads_);
}

void TrainingLoop::set_up() {
  world_ = read_world_env();
  W_ = world_.world_size;
  // Rank 0 alone logs, writes metrics and checkpoints, evaluates and runs hooks; the others
  // say only what goes wrong.
  main_rank_ = world_.rank == 0;
  if (!main_rank_) log::init("", log::Level::kWarn);
  // Before any tensor work: LibTorch picks its kernel set at its first dispatched kernel.
  pin_libtorch_cpu_kernels(cfg_.run.libtorch_kernels, "run.libtorch_kernels");
  // Parallel micro-batch workers share the cores: each runs its kernels single-threaded.
  configure_threads(cfg_.train.cpu_workers > 1 ? 1 : threads_per_rank(cfg_.run.threads, world_));
  // The same seed on every rank: the model starts identical everywhere.
  torch::manual_seed(static_cast<uint64_t>(cfg_.run.seed));
  device_ = resolve_device(cfg_.run.device);
  // One GPU per rank of this machine (NCCL).
  if (W_ > 1 && device_.is_cuda())
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(world_.local_rank));
  const auto& entry = registry<TaskEntry>().get(cfg_.task, "task");
  bf16_ = use_bf16_autocast(cfg_.run.precision, device_, entry.language_model);
  if (cfg_.train.cpu_workers > 1 && !device_.is_cpu())
    throw InputError(stoch::str("train.cpu_workers: ", cfg_.train.cpu_workers,
                                " workers need run.device cpu, not ", device_.str()));

  check_schedule(cfg_.schedule);
  check_world_size_allowed(cfg_, W_, "WORLD_SIZE");
  if (W_ > 1) data_parallel_backend(device_, cfg_.dist.backend);
  // Before anything large is allocated: a run that cannot fit is refused, not killed later.
  if (entry.estimate_memory) {
    const MemoryEstimate need = entry.estimate_memory(cfg_, W_);
    check_memory_fits(need, world_.local_world_size, device_);
    log::info("memory: at least " + need.describe() + (W_ > 1 ? " per rank" : ""));
  }
  task_ = entry.make(cfg_, device_);
  if (!resume_) task_->start_fresh();
  // Dropout masks differ between ranks, as they differ between micro-batches of one process.
  if (world_.rank > 0)
    torch::manual_seed(static_cast<uint64_t>(cfg_.run.seed) +
                       0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(world_.rank));
  model_ = &task_->model();
  sharded_ = W_ > 1 && cfg_.dist.shard != "none";
  if (!sharded_) optim_ = std::make_unique<optim::AdamW>(named_params(*model_), cfg_.optim);
  if (task_->wants_helper_lane() && device_.is_cpu() && at::get_num_threads() >= 2)
    open_helper_lane();
  for (const auto& spec : cfg_.hooks) {
    const auto& hook = registry<hooks::HookEntry>().get(spec.name, "hooks.name");
    using hooks::Needs;
    if ((hook.needs == Needs::kLm && !task_->lm_view()) ||
        (hook.needs == Needs::kValue && !task_->value_view()))
      throw InputError(stoch::str("hooks: ", spec.name, " needs a ",
                                  hook.needs == Needs::kLm ? "language model" : "value network",
                                  ", but task is ", cfg_.task));
    hooks_.push_back(hook.make(*spec.params));
  }
  if (resume_) check_resume_world_size(run_dir_, W_, cfg_.train.grad_accum);
  if (cfg_.train.skip_update_z > 0) guard_.emplace(cfg_.train.skip_update_z);
  // Per rank; a resume on another number of ranks splits the same micro-batches per step.
  state_.emplace(cfg_.train.grad_accum, W_, device_);
}

void TrainingLoop::open_helper_lane() {
  // The cores are shared between this thread and the lane.
  restore_threads_ = at::get_num_threads();
  at::set_num_threads(restore_threads_ / 2);
  lane_ = std::make_unique<Lane>();
  task_->use_lane(lane_.get());
  if (optim_) optim_->set_lane(lane_.get());
  log::info(stoch::str("helper lane on (", restore_threads_ / 2,
                       " intra-op threads each for it and the main thread)"));
}

void TrainingLoop::restore() {
  auto ckpt = store_.load_latest(restore_before_ >= 0 ? restore_before_
                                                      : std::numeric_limits<int64_t>::max());
  if (!ckpt) {
    if (main_rank_) log::warn("no complete checkpoint found: starting from step 0");
    task_->start_fresh();
    return;
  }
  const int64_t accum = resume_grad_accum(ckpt->dir, ckpt->state, W_, cfg_.train.grad_accum);
  const int64_t saved_world = ckpt->state.value("world_size", int64_t{1});
  if (saved_world != W_)
    log::info(stoch::str("world size ", saved_world, " -> ", W_, ": grad_accum ",
                         ckpt->state.value("grad_accum", cfg_.train.grad_accum), " -> ", accum,
                         " per rank keeps ", accum * W_, " micro-batches per step"));
  state_->grad_accum = accum;
  load_model_tensors(*model_, ckpt->tensors["model"], ckpt->dir + "/model.safetensors");
  saved_optim_ = whole_optimizer_state(*ckpt, param_shapes(*model_));
  restore_rng(ckpt->tensors["rng"], device_, world_.rank, saved_world != W_,
              ckpt->dir + "/rng.safetensors");
  saved_optim_dir_ = ckpt->dir;
  naming_checkpoint(ckpt->dir, [&] {
    task_->load_state(*ckpt);
    for (size_t i = 0; i < hooks_.size(); ++i) {
      auto it = ckpt->tensors.find(hooks::state_key(i));
      if (it != ckpt->tensors.end()) hooks_[i]->load_state(it->second);
    }
    state_->restore(ckpt->state, main_rank_);
    if (guard_ && ckpt->state.contains("update_guard")) guard_->load(ckpt->state["update_guard"]);
  });
  from_checkpoint_ = true;
  log::info(stoch::str("resumed from ", ckpt->dir, " (step ", state_->step, ")"));
}

void TrainingLoop::join_ranks(const Metrics& data_facts) {
  const int64_t start_step = state_->step;
  std::string data_text;
  for (const auto& [key, value] : data_facts)
    data_text += stoch::str(key, " ", format_number(value, 17), "\n");
  dist_ = std::make_unique<Distributed>(
      world_, device_, cfg_.dist,
      Rendezvous{to_yaml(cfg_, false), run_dir_, rollbacks_.count, data_text});
  const auto step_here = torch::full({1}, start_step, torch::kLong);
  const auto steps = dist_->all_gather(step_here);
  for (int64_t r = 0; r < W_; ++r)
    if (steps[static_cast<size_t>(r)].item<int64_t>() != start_step)
      throw std::runtime_error(stoch::str("rank ", r, " starts at step ",
                                          steps[static_cast<size_t>(r)].item<int64_t>(),
                                          " but rank ", world_.rank, " at step ", start_step,
                                          ": the ranks found different checkpoints"));
  // Identical already (same seed); made certain, as DistributedDataParallel does.
  if (start_step == 0) {
    std::vector<torch::Tensor> state;
    for (auto& [name, t] : model_tensors(*model_)) state.push_back(t.detach());
    dist_->broadcast_from_main(state);
  }
  if (sharded_)
    zero_ = std::make_unique<ShardedAdamW>(*dist_, named_params(*model_), cfg_.optim,
                                           cfg_.dist.shard == "gradients");
  // Gradient sharding reduce-scatters after the backward passes instead.
  if (cfg_.dist.shard != "gradients") {
    std::vector<torch::Tensor> trained;
    for (const auto& p : model_->parameters())
      if (p.requires_grad()) trained.push_back(p);
    buckets_ = std::make_unique<GradientBuckets>(
        *dist_, trained, static_cast<int64_t>(cfg_.train.allreduce_bucket_mb * (1 << 20)));
  }
  log::info(stoch::str("data parallel: ", W_, " ranks (", dist_->backend_name(), "), gradients ",
                       buckets_ ? stoch::str("all-reduced in ", buckets_->num_buckets(), " buckets")
                                : std::string("reduce-scattered")));
}

void TrainingLoop::open_metrics() {
  if (!main_rank_) return;
  metrics_ = std::make_unique<MetricsWriter>(run_dir_ + "/metrics.jsonl",
                                             cfg_.log.tensorboard ? run_dir_ + "/tb" : "");
  if (resume_) metrics_->restart_after(from_checkpoint_ ? state_->step : -1);
}

void TrainingLoop::write_metrics(int64_t step, const std::string& split, const Metrics& m) {
  if (metrics_) metrics_->write(step, split, m);
}

int TrainingLoop::run(const std::function<void()>& on_ready,
                      const std::function<void()>& on_restored) {
  if (on_ready && main_rank_) on_ready();
  // Rank 0 wrote it before the ranks last met, so every rank reads the same. A fresh run has
  // none: the record of an earlier run in the folder is rank 0's to remove (in on_ready), and
  // the other ranks read it before that, met under another attempt number and waited 300 s.
  if (resume_) rollbacks_ = Rollbacks::read(run_dir_);
  if (resume_) {
    restore();
    // Without a checkpoint the run starts over, step 0's lines included: they are written again.
    if (main_rank_)
      truncate_metrics_after(run_dir_ + "/metrics.jsonl", from_checkpoint_ ? state_->step : -1);
    if (on_restored && main_rank_) on_restored();
  }
  // Joined only now, after every check that can refuse the run: a rank that fails before
  // this point cannot leave the others waiting for it inside a collective.
  // Before the ranks meet, which compare them: ranks whose configs agree can still read other
  // files. Otherwise needed only for a fresh run's "data" line.
  Metrics facts;
  if (W_ > 1 || state_->step == 0) facts = task_->data_facts();
  if (W_ > 1) join_ranks(facts);
  const double full_mb = static_cast<double>(unsharded_state_bytes(named_params(*model_))) / 1e6;
  if (zero_)
    log::info(stoch::str("optimizer state: ", format_number(zero_->state_bytes() / 1e6, 4),
                         " MB on this rank, 1/", W_, " of ", format_number(full_mb, 4), " MB (",
                         cfg_.dist.shard, " sharding)"));
  else
    log::info(stoch::str("optimizer state: ", format_number(full_mb, 4), " MB on every rank"));
  if (!saved_optim_.empty()) {
    naming_checkpoint(saved_optim_dir_, [&] {
      if (zero_)
        zero_->load_state(saved_optim_);
      else
        optim_->load_state(saved_optim_);
    });
    saved_optim_.clear();
  }
  open_metrics();

  const int64_t start_step = state_->step, total = cfg_.train.steps;
  // The restored count, not the config's: a resume on another number of ranks keeps the run's.
  task_->set_micro_batches_per_step(state_->micro_batches_per_step());
  units_per_step_ = task_->units_per_micro() * state_->micro_batches_per_step();
  rate_name_ = task_->rate_name();
  // Model FLOP/s against the peak: a GPU per rank; ranks on the CPU share their machine's, one
  // machine per LOCAL_WORLD_SIZE ranks (torchrun over several hosts).
  const double machines = static_cast<double>(W_) / static_cast<double>(world_.local_world_size);
  peak_flops_ =
      cfg_.run.peak_tflops * 1e12 * (device_.is_cuda() ? static_cast<double>(W_) : machines);
  flops_per_unit_ = task_->flops_per_unit();
  if (start_step == 0 && !facts.empty()) write_metrics(0, "data", facts);
  log::info(stoch::str("device ", device_.str(), bf16_ ? " (bf16 autocast)" : " (fp32)", ", ",
                       counted(at::get_num_threads(), "thread"), " on ", cpu_isa_summary(),
                       ", LibTorch kernels ", libtorch_cpu_kernels(), "; ", units_per_step_, " ",
                       rate_name_.substr(0, rate_name_.find("_per_s")), " per step; steps ",
                       start_step, " -> ", total));
  if (!device_.is_cuda())
    if (const auto busy = busy_machine_warning(at::get_num_threads()); !busy.empty())
      log::warn(busy);
  if (start_step >= total) {
    log::info(stoch::str("nothing to do: the run already reached train.steps = ", total));
    return kExitOk;
  }
  // Every hook also measures the untrained model: the at-initialisation baseline.
  if (start_step == 0 && main_rank_)
    for (size_t i = 0; i < hooks_.size(); ++i) run_hook(i, 0);

  MicroBatchRunner micro_batches(
      *task_, state_->grad_accum, cfg_.train.cpu_workers, bf16_, device_,
      DataShard{world_.rank, W_, buckets_.get(), start_step, state_->micro_batches});
  install_stop_handlers();
  model_->train();
  last_progress_ = Clock::now() - std::chrono::seconds(1);
  while (state_->step < total)
    if (const auto code = train_step(micro_batches)) return *code;

  const std::string summary = task_->summary(last_eval_);
  if (!summary.empty()) log::info(summary);
  log::info(stoch::str("done: ", total, " steps in ", format_duration(state_->elapsed_s),
                       " of training; run dir ", run_dir_));
  return kExitOk;
}

// Every rank calls it (their RNG states are gathered); rank 0 writes, and the others wait
// for it, so a stop signal ends every rank after the checkpoint is complete.
void TrainingLoop::save(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.tensors["rng"] = rng_tensors(device_, dist_.get());
  const auto pending_loss = state_->interval.loss.to(torch::kDouble).reshape({1});
  if (dist_) dist_->all_reduce_sum(pending_loss);
  // A sharded run's optimiser state is written by every rank, each its own shard, into the
  // folder rank 0 then completes and renames.
  std::vector<std::string> staged;
  if (zero_) {
    if (main_rank_) store_.prepare(step);
    dist_->barrier();
    for (int64_t r = 0; r < W_; ++r) staged.push_back(shard_file_stem(r) + ".safetensors");
    write_safetensors(store_.staging(step) + "/" + staged[static_cast<size_t>(world_.rank)],
                      zero_->shard_state());
    dist_->barrier();
  }
  if (!main_rank_) {
    dist_->barrier();
    return;
  }
  if (metrics_) metrics_->sync();
  c.tensors["model"] = model_tensors(*model_);
  if (optim_) c.tensors["optimizer"] = optim_->state();
  c.state = state_->to_json(pending_loss.item<double>());
  c.state["task"] = cfg_.task;
  // What the run trained with, for a resume to hold config.yaml (a file anyone can edit) to.
  c.state["config"] = to_yaml(cfg_, /*with_docs=*/false);
  if (guard_) c.state["update_guard"] = guard_->state();
  if (zero_) c.state["optimizer_layout"] = zero_->layout().to_json();
  task_->save_state(c);
  for (size_t i = 0; i < hooks_.size(); ++i) {
    auto s = hooks_[i]->state();
    if (!s.empty()) c.tensors[hooks::state_key(i)] = std::move(s);
  }
  const std::string dir =
      store_.save(c, static_cast<int>(cfg_.train.keep_last), cfg_.train.keep_every, staged);
  log::info(stoch::str("checkpoint ", dir));
  if (dist_) dist_->barrier();
}

}  // namespace stoch::train
