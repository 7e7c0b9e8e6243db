#include "train/lm_task.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/crc32c.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "models/causal_attention.h"
#include "models/chunked_ce.h"
#include "models/hf_gpt2.h"
#include "train/experiment.h"
#include "train/memory_estimate.h"

namespace stoch::train {

LmTask::LmTask(const ExperimentConfig& cfg, const torch::Device& device)
    : device_(device), batch_size_(cfg.train.batch_size), eval_batches_(cfg.train.eval_batches) {
  const auto& s = cfg.task_sections<LmSections>();
  source_ = data::make_token_source(s.data, static_cast<uint64_t>(cfg.run.seed));
  bytes_per_token_ = source_->val_bytes_per_token();
  models::LmConfig mc = s.model;
  if (cfg.train.cpu_workers > 1 && mc.dropout > 0)
    throw InputError(
        "train.cpu_workers: parallel workers need model.dropout = 0 (dropout draws from one "
        "shared generator, so its order would depend on thread timing)");
  vocab_from_data_ = mc.vocab_size == 0;
  init_from_ = mc.init_from;
  if (mc.vocab_size == 0) mc.vocab_size = source_->vocab_size();
  if (mc.vocab_size < source_->vocab_size())
    throw InputError(stoch::str("model.vocab_size: ", mc.vocab_size,
                                " is smaller than the data's vocabulary (", source_->vocab_size(),
                                ")"));
  if (vocab_from_data_) {
    // The start's memory estimate could not read this vocabulary (a stray huge id in a folder
    // without meta.json sets it): weights and gradients alone, for any sharding, must fit.
    const double parameters = static_cast<double>(mc.parameter_count());
    const std::string lower = "model.vocab_size (the data's largest id sets it)";
    MemoryEstimate e;
    e.add("parameters", 4 * parameters, lower);
    e.add("gradients", 4 * parameters, lower);
    check_memory_fits(e, 1, device_);
  }
  context_ = mc.context;
  if (!init_from_.empty() &&
      !registry<models::LmArchEntry>().get(mc.arch, "model.arch").gpt2_format)
    throw InputError(stoch::str("model.init_from: model.arch ", mc.arch,
                                " has no GPT-2 form to read the folder into"));
  model_ = models::make_language_model(mc);
  ce_chunk_rows_ = mc.ce_chunk_rows;
  model_->to(device_);
  log::info(stoch::str("data ", source_->describe(), "; model ", mc.arch, ", ",
                       model_->num_parameters() / 1e6, "M parameters (", model_->describe(), ")"));
  const bool cpu_float32 = device_.is_cpu() && !use_bf16_autocast(cfg.run.precision, device_, true);
  if (dynamic_cast<models::GptImpl*>(model_.get()))
    log::info(models::describe_attention(mc.attention, cpu_float32, mc.dropout > 0, mc.context,
                                         mc.d_model / mc.n_head));

  // A split too short for one window is refused here, before the run folder is written: the
  // val split by the Bayes loss's windows, the train split by its first window.
  std::vector<int32_t> first(static_cast<size_t>(context_ + 1));
  source_->window(data::Split::kTrain, 0, context_ + 1, first.data());
  bayes_val_loss_ = bayes_loss(data::Split::kVal, eval_batches_ * batch_size_);
}

// PaLM's count (appendix B), as nanoGPT and llm.c use it: 6 FLOPs per parameter and token for
// the products of the forward and backward passes, plus what the architecture adds (attention's
// scores and weighted sums). The position embedding is a lookup, not a product.
double LmTask::flops_per_unit() const {
  const auto& c = model_->config();
  return 6.0 * static_cast<double>(model_->num_parameters(/*exclude_position_embedding=*/true)) +
         registry<models::LmArchEntry>().get(c.arch, "model.arch").extra_flops_per_token(c);
}

// The Bayes-optimal loss on the very windows evaluation uses: the floor a model of this context
// could reach, next to the infinite-context entropy rate. NaN when the source cannot tell.
double LmTask::bayes_loss(data::Split split, int64_t windows) const {
  const int64_t len = context_ + 1, V = source_->vocab_size();
  std::vector<int32_t> buf(static_cast<size_t>(len));
  double total = 0.0;
  for (int64_t w = 0; w < windows; ++w) {
    source_->window(split, static_cast<uint64_t>(w), len, buf.data());
    const auto cond = source_->exact_conditionals(buf.data(), len);
    if (cond.empty()) return NAN;
    for (int64_t t = 1; t < len; ++t) total -= std::log(cond[static_cast<size_t>(t * V + buf[t])]);
  }
  return total / static_cast<double>(windows * context_);
}

torch::Tensor LmTask::windows(data::Split split, uint64_t first, int64_t n) const {
  const int64_t len = context_ + 1;
  // Pinned (page-locked) host memory on CUDA, so the copy below is truly asynchronous instead
  // of waiting on the stream; LibTorch's caching host allocator reuses the blocks.
  auto out = torch::empty(
      {n, len}, torch::TensorOptions().dtype(torch::kInt).pinned_memory(device_.is_cuda()));
  auto* p = out.data_ptr<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    source_->window(split, first + static_cast<uint64_t>(i), len, p + i * len);
  // Widen on the device: the host side stays a pinned int32 buffer.
  return out.to(device_, /*non_blocking=*/true).to(torch::kLong);
}

// Mean next-token cross-entropy over every position of [n, context + 1] windows, in float32
// even when the forward pass ran in bf16.
torch::Tensor LmTask::next_token_loss(const torch::Tensor& w) {
  if (ce_chunk_rows_ > 0) {
    const auto h = model_->hidden(w.slice(1, 0, context_));
    return models::chunked_cross_entropy(h.reshape({-1, h.size(-1)}), model_->unembedding(),
                                         w.slice(1, 1, context_ + 1).reshape({-1}), ce_chunk_rows_);
  }
  const auto logits = model_->forward(w.slice(1, 0, context_)).to(torch::kFloat);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                              w.slice(1, 1, context_ + 1).reshape({-1}));
}

torch::Tensor LmTask::train_loss(int64_t micro) {
  return next_token_loss(
      windows(data::Split::kTrain, static_cast<uint64_t>(micro * batch_size_), batch_size_));
}

Metrics LmTask::evaluate(int64_t /*step*/) {
  torch::NoGradGuard no_grad;
  model_->eval();
  double total = 0.0;
  for (int64_t b = 0; b < eval_batches_; ++b) {
    total += next_token_loss(
                 windows(data::Split::kVal, static_cast<uint64_t>(b * batch_size_), batch_size_))
                 .item<double>();
  }
  Metrics m;
  m["val/loss"] = total / static_cast<double>(eval_batches_);
  if (bytes_per_token_ > 0) m["val/bpb"] = m["val/loss"] / std::log(2.0) / bytes_per_token_;
  if (!std::isnan(bayes_val_loss_)) m["val/bayes_loss"] = bayes_val_loss_;
  return m;
}

const hooks::LmView* LmTask::lm_view() {
  if (!view_.model) {
    view_.model = model_.get();
    view_.source = source_.get();
    view_.eval_windows = windows(data::Split::kVal, 0, eval_batches_ * batch_size_);
  }
  return &view_;
}

void LmTask::start_fresh() {
  if (init_from_.empty()) return;
  auto* gpt = dynamic_cast<models::GptImpl*>(model_.get());
  TORCH_CHECK(gpt, "model.arch ", model_->config().arch, " claims GPT-2's format but is no Gpt");
  models::load_gpt2_weights(*gpt, init_from_, vocab_from_data_);
  log::info(stoch::str("initial weights from ", init_from_, " (model.init_from)"));
}

Metrics LmTask::data_facts() {
  Metrics m;
  if (auto h = source_->entropy_rate_nats()) {
    m["data/entropy_rate"] = *h;
    m["data/entropy_rate_stderr"] = source_->entropy_rate_stderr();
  }
  m["data/vocab_size"] = static_cast<double>(source_->vocab_size());
  // The first windows of each split, summed up: the ranks of a data-parallel run compare their
  // data facts, and other files behind the same config give other windows.
  uint32_t crc = 0;
  std::vector<int32_t> window(static_cast<size_t>(context_ + 1));
  for (const auto split : {data::Split::kTrain, data::Split::kVal})
    for (uint64_t i = 0; i < 4; ++i) {
      source_->window(split, i, context_ + 1, window.data());
      crc = crc32c(window.data(), window.size() * sizeof(int32_t), crc);
    }
  m["data/windows_crc32c"] = crc;
  return m;
}

std::string LmTask::summary(const Metrics& last_eval) const {
  auto it = last_eval.find("val/loss");
  if (it == last_eval.end()) return "";
  const double loss = it->second;
  std::string s = stoch::str("summary: val/loss ", format_number(loss, 5), " nats/token");
  if (bytes_per_token_ > 0)
    s += stoch::str(" (", format_number(loss / std::log(2.0) / bytes_per_token_, 4), " bits/byte)");
  if (auto h = source_->entropy_rate_nats()) {
    const double gap = loss - *h;
    s += stoch::str("; data entropy rate ", format_number(*h, 5), " -> gap ", format_number(gap, 3),
                    " nats/token, ", std::fabs(gap) <= 0.05 ? "within" : "NOT within",
                    " 0.05 of the truth");
  }
  if (!std::isnan(bayes_val_loss_))
    s += stoch::str("; Bayes-optimal loss on these windows ", format_number(bayes_val_loss_, 5));
  return s;
}

namespace {

// Lower bounds (train/memory_estimate.h); the architecture counts the activations it keeps.
MemoryEstimate estimate_lm_memory(const ExperimentConfig& cfg, int64_t world_size) {
  const auto& s = cfg.task_sections<LmSections>();
  models::LmConfig mc = s.model;
  if (mc.vocab_size == 0) {
    // A prepared folder's vocabulary is known only once read: count the smallest.
    const int64_t least = data::token_source_entry(s.data).least_vocab;
    mc.vocab_size = least > 0 ? least : s.data.vocab_size;
  }
  const double B = static_cast<double>(cfg.train.batch_size), T = static_cast<double>(mc.context);
  const bool sharded = world_size > 1 && cfg.dist.shard != "none";
  MemoryEstimate e;
  add_training_state(e, static_cast<double>(mc.parameter_count()),
                     sharded ? 1.0 / static_cast<double>(world_size) : 1.0, kLmSizeKeys);
  // Micro-batches alive at once: the workers in use, no more than a step's micro-batches.
  const double workers = static_cast<double>(
      std::min(std::max<int64_t>(1, cfg.train.cpu_workers), cfg.train.grad_accum));
  // Under bf16 autocast the products' outputs a backward pass keeps are bf16; counted at 4 bytes
  // they made the bound too high (a measured run kept about 0.86 of that), so a run that fits
  // could be refused.
  const bool bf16 = use_bf16_autocast(cfg.run.precision, resolve_device(cfg.run.device),
                                      /*language_model=*/true);
  const double kept =
      registry<models::LmArchEntry>().get(mc.arch, "model.arch").kept_floats_per_token(mc);
  e.add("activations", (bf16 ? 2 : 4) * workers * B * T * kept,
        "train.batch_size (raise train.grad_accum to keep the batch), model.context or the "
        "model's size");
  const double rows = mc.ce_chunk_rows > 0 ? std::min<double>(B * T, mc.ce_chunk_rows) : B * T;
  e.add("logits", 4 * workers * rows * static_cast<double>(mc.vocab_size),
        "model.ce_chunk_rows or train.batch_size");
  e.add("data (evaluation windows)", 4 * static_cast<double>(cfg.train.eval_batches) * B * (T + 1),
        "train.eval_batches", /*on_host=*/true);
  return e;
}

const bool registered =
    register_task<LmSections, LmTask>("lm", "decoder-only transformer language model", "val/loss",
                                      estimate_lm_memory, /*language_model=*/true);

}  // namespace

}  // namespace stoch::train
