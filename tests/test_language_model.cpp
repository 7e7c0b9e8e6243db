// A second language-model architecture is one file: a LanguageModelImpl subclass and its
// register_language_model entry. This file is that file for a bigram model (an embedding and
// a separate unembedding, no context), which then trains through the lm task, its evaluation,
// hooks and sampling like the GPT.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "core/errors.h"
#include "generate/sampling.h"
#include "models/hf_gpt2.h"
#include "models/language_model.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/lm_task.h"
#include "train/trainer.h"

namespace stoch {
namespace {

class BigramLmImpl : public models::LanguageModelImpl {
 public:
  explicit BigramLmImpl(models::LmConfig cfg) : LanguageModelImpl(std::move(cfg)) {
    wte = register_module("wte", torch::nn::Embedding(cfg_.vocab_size, cfg_.d_model));
    out = register_parameter("out",
                             torch::randn({cfg_.vocab_size, cfg_.d_model}).mul_(cfg_.init_std));
  }
  torch::Tensor hidden(const torch::Tensor& idx) override { return wte->forward(idx); }
  torch::Tensor logits(const torch::Tensor& h) override { return torch::matmul(h, out.t()); }
  torch::Tensor embed(const torch::Tensor& ids) override { return wte->forward(ids); }
  torch::Tensor unembedding() const override { return out; }
  int64_t num_parameters(bool) const override { return 2 * cfg_.vocab_size * cfg_.d_model; }

  torch::nn::Embedding wte{nullptr};
  torch::Tensor out;
};

// It reads no n_layer or mlp_ratio: its FLOPs and kept activations are its own, not GPT's.
const bool registered = models::register_language_model<BigramLmImpl>(
    "test_bigram", {"test only: an embedding, then a separate unembedding",
                    [](const models::LmConfig& c) { return 2 * c.vocab_size * c.d_model; },
                    [](const models::LmConfig&) { return 0.0; },
                    [](const models::LmConfig& c) { return static_cast<double>(c.d_model); }});

std::string bigram_config(const std::string& extra_model = "") {
  return "task: lm\n"
         "run: {seed: 5, threads: 1, device: cpu}\n"
         "data: {source: markov, vocab_size: 8, order: 1, alpha: 0.3}\n"
         "model: {arch: test_bigram, context: 16, d_model: 16" +
         extra_model +
         "}\n"
         "optim: {lr: 0.05, weight_decay: 0.0}\n"
         "schedule: {warmup_steps: 5}\n"
         "train: {steps: 150, batch_size: 8, eval_every: 75, eval_batches: 4, ckpt_every: 75}\n"
         "log: {every: 1, console_every: 1000}\n"
         "hooks:\n  - {name: entropy, every: 75}\n";
}

train::ExperimentConfig parse_text(const std::string& dir, const std::string& text) {
  test::write_text(dir + "/c.yaml", text);
  return train::parse_experiment(train::load_config(dir + "/c.yaml", {}));
}

TEST(LanguageModelArch, ABigramModelTrainsThroughTheLmTask) {
  const std::string dir = test::temp_dir("lm_arch");
  auto cfg = parse_text(dir, bigram_config());
  const std::string run = dir + "/run";
  ASSERT_EQ(train::run_training(cfg, run, /*resume=*/false,
                                [&] { std::filesystem::create_directories(run); }),
            0);
  // A first-order Markov source is exactly what a bigram model can fit: its held-out loss ends
  // near the Bayes-optimal loss on the same windows, far below the uniform log 8.
  const auto train = test::train_losses(run);
  const auto loss = test::metric_by_step(run, "eval", "val/loss");
  const auto bayes = test::metric_by_step(run, "eval", "val/bayes_loss");
  ASSERT_TRUE(train.count(1) && loss.count(150) && bayes.count(150));
  EXPECT_NEAR(train.at(1), std::log(8.0), 0.05);
  EXPECT_LT(loss.at(150) - bayes.at(150), 0.02) << loss.at(150) << " vs " << bayes.at(150);
  // The hooks read it through the same view as the GPT.
  EXPECT_FALSE(test::metric_by_step(run, "diag", "diag/entropy").empty());

  // Sampling takes any architecture.
  train::LmTask task(cfg, torch::kCPU);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto ids = generate::sample_plain(task.language_model(), {0}, 20, {1.0, 0, 1.0, 8}, gen);
  ASSERT_EQ(ids.size(), 21u);
  for (const auto id : ids) EXPECT_TRUE(id >= 0 && id < 8) << id;
}

// The memory estimate counts the architecture's own activations: GPT's formula would count
// 100000 layers of a model that has none and refuse the run.
TEST(LanguageModelArch, TheMemoryEstimateIsTheArchitectures) {
  const std::string dir = test::temp_dir("lm_arch_memory");
  auto cfg = parse_text(dir, bigram_config(", n_layer: 100000, mlp_ratio: 64"));
  const auto need = registry<train::TaskEntry>().get("lm", "task").estimate_memory(cfg, 1);
  EXPECT_LT(need.total(), 64e6) << need.describe();
  EXPECT_NO_THROW(train::check_run(cfg));
}

// An architecture registered without its counts is refused at once, not left to fail as an
// empty std::function in the first throughput log or memory estimate.
TEST(LanguageModelArch, AnEntryWithoutItsCountsIsRefused) {
  models::LmArchEntry entry{"test only", [](const models::LmConfig&) { return int64_t{1}; }};
  EXPECT_THROW(models::register_language_model<BigramLmImpl>("test_incomplete", entry),
               std::invalid_argument);
  EXPECT_FALSE(registry<models::LmArchEntry>().has("test_incomplete"));
}

TEST(LanguageModelArch, GptOnlyFeaturesRefuseOtherArchitectures) {
  const std::string dir = test::temp_dir("lm_arch_refuse");
  auto cfg = parse_text(dir, bigram_config(", init_from: " + dir));
  try {
    train::LmTask task(cfg, torch::kCPU);
    ADD_FAILURE() << "init_from accepted for test_bigram";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.init_from: model.arch test_bigram"),
              std::string::npos)
        << e.what();
  }
  auto plain = parse_text(dir, bigram_config());
  const auto& model = plain.task_sections<train::LmSections>().model;
  EXPECT_THROW(models::check_gpt2_expressible(model), InputError);
  try {
    parse_text(dir, bigram_config().replace(bigram_config().find("test_bigram"), 11, "nope"));
    ADD_FAILURE() << "an unknown model.arch was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.arch"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace stoch
