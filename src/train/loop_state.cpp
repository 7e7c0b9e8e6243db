#include "train/loop_state.h"

#include <torch/torch.h>

#include <limits>

namespace stoch::train {

LoopState::LoopState(int64_t grad_accum, int64_t world_size, const torch::Device& device)
    : grad_accum(grad_accum), world_size(world_size) {
  interval.loss = torch::zeros({}, torch::TensorOptions().device(device));
}

void LoopState::finish_step(const torch::Tensor& step_loss, double seconds, int64_t units_per_step,
                            bool skipped) {
  ++step;
  micro_batches += micro_batches_per_step();
  units_seen += units_per_step;
  elapsed_s += seconds;
  interval.loss += step_loss / static_cast<double>(grad_accum);
  ++interval.steps;
  interval.skipped += skipped;
  interval.train_s += seconds;
}

void LoopState::close_interval() {
  interval.loss.zero_();
  interval.steps = 0;
  interval.skipped = 0;
  interval.train_s = 0.0;
}

nlohmann::json LoopState::to_json(double interval_loss) const {
  return {{"step", step},
          {"micro_batches", micro_batches},
          {"micro_batches_per_step", micro_batches_per_step()},
          {"grad_accum", grad_accum},
          {"tokens_seen", units_seen},
          {"elapsed_s", elapsed_s},
          {"world_size", world_size},
          {"interval_steps", interval.steps},
          {"interval_train_s", interval.train_s},
          {"interval_loss", interval_loss},
          {"interval_skipped", interval.skipped}};
}

namespace {

// A clock or loss from state.json: 0 when absent, NaN when written as null (JSON has no NaN).
double number(const nlohmann::json& saved, const char* key) {
  const auto it = saved.find(key);
  if (it == saved.end()) return 0.0;
  return it->is_null() ? std::numeric_limits<double>::quiet_NaN() : it->get<double>();
}

}  // namespace

void LoopState::restore(const nlohmann::json& saved, bool holds_interval_loss) {
  step = saved.at("step").get<int64_t>();
  micro_batches = saved.value("micro_batches", step * micro_batches_per_step());
  units_seen = saved.value("tokens_seen", int64_t{0});
  elapsed_s = number(saved, "elapsed_s");
  interval.train_s = number(saved, "interval_train_s");
  interval.steps = saved.value("interval_steps", int64_t{0});
  interval.skipped = saved.value("interval_skipped", int64_t{0});
  // Saved as the sum over the saving run's ranks of each one's losses; the log divides by this
  // run's number of ranks, so a resume on another number rescales it.
  const double saved_world = static_cast<double>(saved.value("world_size", int64_t{1}));
  interval.loss.fill_(holds_interval_loss ? number(saved, "interval_loss") *
                                                static_cast<double>(world_size) / saved_world
                                          : 0.0);
}

}  // namespace stoch::train
