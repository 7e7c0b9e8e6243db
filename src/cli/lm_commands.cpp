// eval, sample, data prepare: using a trained language model and preparing its data.
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "core/torch/device.h"
#include "data/token_files.h"
#include "train/experiment.h"
#include "train/lm_task.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

struct LoadedLm {
  train::ExperimentConfig cfg;
  std::unique_ptr<train::LmTask> task;
  int64_t step = 0;
};

LoadedLm load_lm(const std::string& run_dir, int64_t step) {
  const std::string cfg_path = run_dir + "/config.yaml";
  if (!fs::is_regular_file(cfg_path))
    throw InputError(stoch::str(cfg_path, ": not found (is ", run_dir, " a run directory?)"));
  LoadedLm out{train::parse_experiment(train::load_config(cfg_path, {})), nullptr, 0};
  if (out.cfg.task != "lm")
    throw InputError(
        stoch::str(cfg_path, ": task is ", out.cfg.task, ", this command needs an lm run"));
  CheckpointStore store(run_dir);
  std::optional<Checkpoint> ckpt;
  if (step >= 0)
    ckpt = store.load(step);
  else
    ckpt = store.load_latest();
  if (!ckpt) throw InputError(stoch::str(run_dir, ": no complete checkpoint to load"));
  configure_threads(out.cfg.run.threads);
  out.task = std::make_unique<train::LmTask>(out.cfg, resolve_device(out.cfg.run.device));
  train::load_model_tensors(out.task->model(), ckpt->tensors["model"]);
  out.step = ckpt->step;
  return out;
}

std::vector<int64_t> encode_prompt(const std::string& prompt, bool bytes, int64_t vocab) {
  std::vector<int64_t> ids;
  if (bytes) {
    for (unsigned char ch : prompt) ids.push_back(ch);
    return ids;
  }
  for (const auto& tok : split(prompt, ' ')) {
    if (tok.empty()) continue;
    try {
      size_t used = 0;
      const long long id = std::stoll(tok, &used);
      if (used != tok.size() || id < 0 || id >= vocab) throw std::out_of_range(tok);
      ids.push_back(id);
    } catch (const std::exception&) {
      throw InputError(stoch::str("--prompt: expected token ids in [0, ", vocab,
                                  ") separated by spaces, got \"", tok, "\""));
    }
  }
  return ids;
}

// Draws one token from logits [V] with temperature, top-k and top-p filtering.
int64_t draw(torch::Tensor logits, const SampleArgs& a, torch::Generator& gen) {
  if (a.temperature == 0.0) return logits.argmax().item<int64_t>();
  logits = logits.to(torch::kFloat) / a.temperature;
  if (a.top_k > 0 && a.top_k < logits.size(0)) {
    const auto kth = std::get<0>(logits.topk(a.top_k)).min();
    logits = logits.masked_fill(logits < kth, -INFINITY);
  }
  auto probs = torch::softmax(logits, -1);
  if (a.top_p < 1.0) {
    auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
    // Keep a token while the mass before it is below top_p: the smallest set reaching top_p.
    auto drop = (sorted.cumsum(-1) - sorted) >= a.top_p;
    probs = probs.scatter(0, order, sorted.masked_fill(drop, 0.0));
  }
  return torch::multinomial(probs.cpu(), 1, false, gen).item<int64_t>();
}

}  // namespace

int eval(const EvalArgs& a) {
  auto lm = load_lm(a.run_dir, a.checkpoint);
  const auto m = lm.task->evaluate(lm.step);
  std::cout << "step " << lm.step;
  for (const auto& [k, v] : m) std::cout << " " << k << "=" << format_number(v, 6);
  std::cout << "\n";
  if (auto h = lm.task->source().entropy_rate_nats())
    std::cout << "data/entropy_rate=" << format_number(*h, 6) << "\n";
  return kExitOk;
}

int sample(const SampleArgs& a) {
  auto lm = load_lm(a.run_dir, a.checkpoint);
  auto& gpt = lm.task->gpt();
  const bool bytes = lm.task->byte_level();
  const int64_t vocab = lm.task->source().vocab_size();
  std::vector<int64_t> ids = encode_prompt(a.prompt, bytes, vocab);
  if (ids.empty())
    ids.push_back(bytes ? '\n' : 0);  // an empty prompt starts from a newline / token 0
  const size_t prompt_len = ids.size();
  torch::NoGradGuard no_grad;
  gpt->eval();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.seed));
  const int64_t ctx = gpt->config().context;
  const auto device = gpt->wte->weight.device();
  for (int64_t i = 0; i < a.max_tokens; ++i) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - ctx);
    auto x = torch::tensor(std::vector<int64_t>(ids.begin() + start, ids.end()), torch::kLong)
                 .unsqueeze(0)
                 .to(device);
    auto logits = gpt->forward(x)[0][-1].slice(0, 0, vocab);
    ids.push_back(draw(logits, a, gen));
  }
  if (bytes) {
    std::string text(ids.begin(), ids.end());
    std::cout << text << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i)
      std::cout << (i ? " " : "") << (i == prompt_len ? "| " : "") << ids[i];
    std::cout << "\n";
  }
  return kExitOk;
}

int data_prepare(const PrepareArgs& a) {
  const auto r = data::prepare_token_files(a.inputs, a.out, a.val_fraction);
  log::info(stoch::str("wrote ", a.out, "/{train.bin,val.bin,meta.json}: ", r.train_tokens,
                       " train and ", r.val_tokens, " val tokens (byte tokenizer, uint16)"));
  return kExitOk;
}

}  // namespace stoch::cli
