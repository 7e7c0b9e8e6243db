// stoch sample: text from a trained language model, token by token or speculatively with the
// run's surplus probe as the drafter.
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/run_dir.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "core/torch/device.h"
#include "core/torch/model_tensors.h"
#include "data/tokenizer/tokenizer.h"
#include "generate/sampling.h"
#include "train/experiment.h"
#include "train/lm_task.h"

namespace stoch::cli {
namespace {

struct SampleArgs {
  std::string run_dir;
  std::string prompt;
  int64_t max_tokens = 200;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  int64_t seed = 0;
  int64_t checkpoint = -1;
  bool speculative = false;
  int64_t draft = 4;
};

struct LoadedLm {
  train::ExperimentConfig cfg;
  std::unique_ptr<train::LmTask> task;
  int64_t step = 0;
  std::optional<generate::SurplusProbe> probe;  // when the run trained a surplus hook
};

LoadedLm load_lm(const std::string& run_dir, int64_t step) {
  LoadedLm out{read_run_config(run_dir), nullptr, 0, std::nullopt};
  const auto* task = registry<train::TaskEntry>().find(out.cfg.task);
  if (!task || !task->language_model)
    throw InputError(stoch::str(run_dir, "/config.yaml: task is ", out.cfg.task,
                                ", this command needs an lm run"));
  pin_libtorch_cpu_kernels(out.cfg.run.libtorch_kernels, "run.libtorch_kernels");
  const Checkpoint ckpt = load_run_checkpoint(run_dir, step);
  configure_threads(out.cfg.run.threads);
  out.task = std::make_unique<train::LmTask>(out.cfg, resolve_device(out.cfg.run.device));
  load_model_tensors(out.task->model(), ckpt.tensors.at("model"), ckpt.dir + "/model.safetensors");
  out.step = ckpt.step;
  for (size_t i = 0; i < out.cfg.hooks.size(); ++i) {
    auto it = ckpt.tensors.find(hooks::state_key(i));
    const auto* hook = registry<hooks::HookEntry>().find(out.cfg.hooks[i].name);
    if (!hook || !hook->sampling_probe || it == ckpt.tensors.end()) continue;
    out.probe = generate::probe_from_state(it->second, ckpt.dir);
    (*out.probe)->to(out.task->language_model().device());
  }
  return out;
}

// Text through the run's tokenizer; without one (synthetic tokens) the prompt is token ids.
std::vector<int64_t> encode_prompt(const std::string& prompt, const data::Tokenizer* tok,
                                   int64_t vocab) {
  std::vector<int64_t> ids;
  if (tok) {
    std::vector<int32_t> t;
    tok->encode(prompt, t);
    return std::vector<int64_t>(t.begin(), t.end());
  }
  for (const auto& word : split(prompt, ' ')) {
    if (word.empty()) continue;
    try {
      size_t used = 0;
      const long long id = std::stoll(word, &used);
      if (used != word.size() || id < 0 || id >= vocab) throw std::out_of_range(word);
      ids.push_back(id);
    } catch (const std::exception&) {
      throw InputError(stoch::str("--prompt: expected token ids in [0, ", vocab,
                                  ") separated by spaces, got \"", word, "\""));
    }
  }
  return ids;
}

int sample(const SampleArgs& a) {
  auto lm = load_lm(a.run_dir, a.checkpoint);
  auto& model = lm.task->language_model();
  const std::string spec = lm.task->tokenizer();
  const auto tok = spec.empty() ? nullptr : data::load_tokenizer(spec);
  const int64_t vocab = lm.task->source().vocab_size();
  std::vector<int64_t> ids = encode_prompt(a.prompt, tok.get(), vocab);
  if (ids.empty())  // an empty prompt starts from a newline, or token 0 without a tokenizer
    ids = tok ? encode_prompt("\n", tok.get(), vocab) : std::vector<int64_t>{0};
  const size_t prompt_len = ids.size();
  if (a.speculative && !lm.probe)
    throw InputError(stoch::str(a.run_dir,
                                ": --speculative needs a run trained with the surplus "
                                "hook (hooks: [{name: surplus}]), whose probe drafts the tokens"));
  model.eval();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.seed));
  const generate::SamplingParams sp{a.temperature, a.top_k, a.top_p, vocab};
  generate::SamplingStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  ids = a.speculative ? generate::sample_speculative(model, **lm.probe, ids, a.max_tokens, a.draft,
                                                     sp, gen, &stats)
                      : generate::sample_plain(model, ids, a.max_tokens, sp, gen, &stats);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string line = stoch::str("sampled ", a.max_tokens, " tokens in ", format_number(seconds, 4),
                                " s (", format_number(a.max_tokens / seconds, 4), " tokens/s), ",
                                stats.model_calls, " model calls");
  if (a.speculative)
    line +=
        stoch::str("; drafted ", stats.drafted, ", accepted ", stats.accepted, " (",
                   format_number(100.0 * stats.accepted / std::max<int64_t>(1, stats.drafted), 3),
                   "%), ", format_number(static_cast<double>(a.max_tokens) / stats.model_calls, 3),
                   " tokens per model call");
  log::info(line);
  if (tok) {
    const std::vector<int32_t> t(ids.begin(), ids.end());
    std::cout << tok->decode(t.data(), t.size()) << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i)
      std::cout << (i ? " " : "") << (i == prompt_len ? "| " : "") << ids[i];
    std::cout << "\n";
  }
  return kExitOk;
}

const bool registered = register_command(
    "sample", "generate text from a trained language model", 50, [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<SampleArgs>();
      cmd.add_option("run_dir", a->run_dir, "run directory")->required();
      cmd.add_option("--prompt", a->prompt,
                     "prompt text (token ids separated by spaces for synthetic data)");
      cmd.add_option("--max-tokens", a->max_tokens, "tokens to generate")->check(integer_in(1));
      cmd.add_option("--temperature", a->temperature, "softmax temperature; 0 is greedy")
          ->check(number_in(0));
      cmd.add_option("--top-k", a->top_k, "keep the k most likely tokens; 0 keeps all")
          ->check(integer_in(0));
      cmd.add_option("--top-p", a->top_p, "keep the smallest set with this much mass")
          ->check(number_in(0, 1));
      cmd.add_option("--seed", a->seed, "sampling seed")
          ->check(integer_in(std::numeric_limits<int64_t>::min()));
      cmd.add_option("--checkpoint", a->checkpoint, "checkpoint step")
          ->default_str("the newest complete")
          ->check(integer_in(0));
      cmd.add_flag("--speculative", a->speculative,
                   "draft with the run's surplus probe and verify with the model (same "
                   "distribution)");
      cmd.add_option(
             "--draft", a->draft,
             "tokens drafted per model call with --speculative (at most the context's free places)")
          ->check(integer_in(1, 64));
      return [a] { return sample(*a); };
    });

}  // namespace
}  // namespace stoch::cli
