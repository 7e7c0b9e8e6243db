// Task "chess_value": a value network that reads a chess position (the FEN as 77 tokens,
// data/chess/fen_tokens.h) and predicts the side to move's win probability as Stockfish labelled
// it (`stoch data chess`), with any value loss as the head: "Stop Regressing"'s chess setting
// (after Ruoss et al. 2024), sized for a CPU.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "data/chess/move_cache.h"
#include "models/value_net.h"
#include "train/task.h"
#include "value/value_loss.h"

namespace stoch::train {

struct ChessDataConfig {
  std::string dir;
  int64_t eval_positions = 2000;
  int64_t move_positions = 200;
  int64_t puzzles = 100;
  int64_t reference_depth = 12;
  int64_t ranking_depth = 6;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("dir", dir, "a `stoch data chess` folder (train.bin, val.bin, meta.json)");
    v("eval_positions", eval_positions, "held-out positions each evaluation reads (0: all)",
      Spec().at_least(0));
    v("move_positions", move_positions,
      "held-out positions for the move metrics (action accuracy, Kendall's tau, mate puzzles), "
      "prepared with Stockfish at the start; 0: none",
      Spec().at_least(0));
    v("puzzles", puzzles,
      "mate-in-1/2 puzzles to find among the held-out positions (beyond those in the move "
      "positions), scored by chess/mate_in_1_accuracy and chess/mate_in_2_accuracy",
      Spec().at_least(0));
    v("reference_depth", reference_depth,
      "action accuracy: depth of the search whose best move is the reference",
      Spec().at_least(1).at_most(40));
    v("ranking_depth", ranking_depth,
      "Kendall's tau and puzzles: depth of the search that scores every legal move",
      Spec().at_least(1).at_most(40));
  }
};

// The chess defaults: a small transformer over the 77 tokens, 128 bins on [0, 1] (Ruoss et
// al.'s head; HL-Gauss with sigma 0.75 bin widths).
models::ValueNetConfig chess_model_defaults();
value::ValueLossConfig chess_value_defaults();

struct ChessValueSections : TaskSectionsOf<ChessValueSections> {
  models::ValueNetConfig model = chess_model_defaults();
  ChessDataConfig data;
  value::ValueLossConfig value = chess_value_defaults();

  template <class V>
  void visit(V& v) {
    v.section("model", model, "the value network: torso (transformer over the FEN's tokens)");
    v.section("data", data, "Stockfish-labelled positions");
    v.section("value", value, "value head and loss: regression or classification");
  }
};

class ChessValueTask : public Task {
 public:
  ChessValueTask(const ExperimentConfig& cfg, const torch::Device& device);

  torch::nn::Module& model() override { return *net_; }
  torch::Tensor train_loss(int64_t micro) override;
  int64_t units_per_micro() const override { return batch_size_; }
  std::string rate_name() const override { return "positions_per_s"; }
  Metrics evaluate(int64_t step) override;
  Metrics data_facts() override;
  std::string summary(const Metrics& last_eval) const override;
  const hooks::ValueView* value_view() override;

  // [N, 77] token ids (uint8) -> [N, 77, vocab] one-hot floats on the task's device.
  torch::Tensor inputs(const torch::Tensor& tokens) const;

  // One held-out position prepared for the move metrics.
  using MovePosition = chess::PreparedPosition;

 private:
  void prepare_move_positions(const std::string& engine_path);
  // The positions from the cache file `cache` ("" for none) when it holds them for `key`.
  bool read_cached_move_positions(const std::string& cache, const std::string& key,
                                  std::chrono::steady_clock::time_point t0);
  void write_move_cache(const std::string& cache, const std::string& key) const;
  Metrics move_metrics();
  uint64_t run_seed_;
  int64_t batch_size_;
  torch::Device device_;
  ChessDataConfig data_;
  torch::Tensor train_tokens_, train_targets_;  // [N, 77] uint8 and [N] float, on the host
  torch::Tensor val_tokens_, val_targets_;      // the evaluated held-out positions
  std::vector<MovePosition> move_positions_;
  std::unique_ptr<value::ValueLoss> loss_;
  models::ValueNet net_{nullptr};
  hooks::ValueView view_;
};

// Kendall's tau-b between two rankings of the same items (ties in either count as neither
// concordant nor discordant); NaN when either side is all ties.
double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace stoch::train
