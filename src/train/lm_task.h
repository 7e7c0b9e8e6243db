// Task "lm": next-token prediction with a language model (model.arch) on a token source.
#pragma once

#include <memory>

#include "data/lm_data.h"
#include "data/token_source.h"
#include "models/language_model.h"
#include "train/task.h"

namespace stoch::train {

struct LmSections : TaskSectionsOf<LmSections> {
  models::LmConfig model;
  data::LmDataConfig data;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "the language model (model.arch picks the architecture)");
    v.section("data", data, "where tokens come from");
  }
};

class LmTask : public Task {
 public:
  LmTask(const ExperimentConfig& cfg, const torch::Device& device);

  torch::nn::Module& model() override { return *model_; }
  torch::Tensor train_loss(int64_t micro) override;
  int64_t units_per_micro() const override { return batch_size_ * context_; }
  double flops_per_unit() const override;
  Metrics evaluate(int64_t step) override;
  Metrics data_facts() override;
  std::string summary(const Metrics& last_eval) const override;
  const hooks::LmView* lm_view() override;
  void start_fresh() override;

  models::LanguageModelImpl& language_model() { return *model_; }
  const data::TokenSource& source() const { return *source_; }
  // The tokenizer behind the ids ("bytes", a BPE folder, or "" for synthetic tokens).
  std::string tokenizer() const { return source_->tokenizer(); }

  // [n, context + 1] windows first..first+n-1 of `split`, as int64 on the task's device.
  torch::Tensor windows(data::Split split, uint64_t first, int64_t n) const;

 private:
  torch::Tensor next_token_loss(const torch::Tensor& windows);
  double bayes_loss(data::Split split, int64_t windows) const;

  std::unique_ptr<data::TokenSource> source_;
  std::shared_ptr<models::LanguageModelImpl> model_;
  int64_t ce_chunk_rows_ = 0;
  torch::Device device_;
  int64_t batch_size_, context_, eval_batches_;
  double bytes_per_token_;  // of the held-out text; 0 when the tokens are not text
  double bayes_val_loss_ = NAN;
  std::string init_from_;  // model.init_from
  bool vocab_from_data_ = false;
  hooks::LmView view_;  // exact-conditional loss on the held-out windows, when known
};

}  // namespace stoch::train
