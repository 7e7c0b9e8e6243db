#include "train/chess_value_task.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/rng.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "data/chess/fen_tokens.h"
#include "data/chess/mate_puzzle.h"
#include "data/chess/position_data.h"
#include "models/value_net_size.h"
#include "train/experiment.h"

namespace stoch::train {
namespace {

constexpr uint64_t kBatch = 1;

// A score as one number for ranking moves: mates beyond any centipawn value, sooner ones first.
double rank_score(const chess::Score& s) {
  if (!s.mate) return s.value;
  return s.value > 0 ? 1e5 - s.value : -1e5 - s.value;
}

// Every record's tokens and label, as tensors.
std::pair<torch::Tensor, torch::Tensor> load_split(const std::string& dir, const std::string& split,
                                                   int64_t limit) {
  auto records = chess::read_positions(dir, split);
  if (limit > 0 && static_cast<int64_t>(records.size()) > limit) records.resize(limit);
  const int64_t n = static_cast<int64_t>(records.size());
  auto tokens = torch::empty({n, chess::kFenTokens}, torch::kUInt8);
  auto targets = torch::empty({n}, torch::kFloat);
  auto* tp = tokens.data_ptr<uint8_t>();
  auto* yp = targets.data_ptr<float>();
  const std::string file = dir + "/" + split + ".bin";
  for (int64_t i = 0; i < n; ++i) {
    const auto& r = records[static_cast<size_t>(i)];
    const auto t = chess::encode_fen(chess::record_fen(r), str(file, ": record ", i));
    std::copy(t.begin(), t.end(), tp + i * chess::kFenTokens);
    yp[i] = r.win_prob;
  }
  return {tokens, targets};
}

}  // namespace

models::ValueNetConfig chess_model_defaults() {
  models::ValueNetConfig m;
  m.torso = "transformer";
  m.n_layer = 2;
  m.n_head = 4;
  m.d_model = 64;
  return m;
}

value::ValueLossConfig chess_value_defaults() {
  value::ValueLossConfig v;
  v.loss = "hl_gauss";
  v.num_bins = 128;
  v.v_min = 0;
  v.v_max = 1;
  v.sigma_ratio = 0.75;
  return v;
}

ChessValueTask::ChessValueTask(const ExperimentConfig& cfg, const torch::Device& device)
    : run_seed_(static_cast<uint64_t>(cfg.run.seed)),
      batch_size_(cfg.train.batch_size),
      device_(device) {
  const auto& s = cfg.task_sections<ChessValueSections>();
  data_ = s.data;
  // Accepted and ignored before: a sweep over it trained one run under two names.
  if (s.value.support != "fixed")
    throw InputError(str("value.support: ", s.value.support,
                         " is not implemented for chess_value, whose targets are win "
                         "probabilities in [0, 1]; use fixed (value.v_min, value.v_max)"));
  if (data_.dir.empty())
    throw InputError("data.dir: expected a `stoch data chess` folder (train.bin, val.bin)");
  std::tie(train_tokens_, train_targets_) = load_split(data_.dir, "train", 0);
  std::tie(val_tokens_, val_targets_) = load_split(data_.dir, "val", data_.eval_positions);
  if (train_tokens_.size(0) == 0) throw InputError(str(data_.dir, "/train.bin: no positions"));
  if (val_tokens_.size(0) == 0)
    throw InputError(str(data_.dir, "/val.bin: no held-out positions to evaluate on"));
  if (data_.move_positions > 0 || data_.puzzles > 0)
    prepare_move_positions(chess::find_stockfish());
  loss_ = value::make_value_loss(s.value);
  loss_->to(device_);
  const std::vector<int64_t> shape = {chess::kFenTokens, chess::fen_vocab_size()};
  net_ = models::ValueNet(s.model, shape, loss_->head_outputs());
  net_->to(device_);
}

torch::Tensor ChessValueTask::inputs(const torch::Tensor& tokens) const {
  return torch::one_hot(tokens.to(torch::kLong), chess::fen_vocab_size())
      .to(torch::kFloat)
      .to(device_);
}

torch::Tensor ChessValueTask::train_loss(int64_t micro) {
  Rng rng(mix_seed(run_seed_, kBatch, static_cast<uint64_t>(micro)));
  auto idx = torch::empty({batch_size_}, torch::kLong);
  auto* ip = idx.data_ptr<int64_t>();
  const uint64_t n = static_cast<uint64_t>(train_tokens_.size(0));
  for (int64_t i = 0; i < batch_size_; ++i) ip[i] = static_cast<int64_t>(rng.below(n));
  const auto x = inputs(train_tokens_.index_select(0, idx));
  const auto y = train_targets_.index_select(0, idx).to(device_);
  return loss_->loss(net_->forward(x), y);
}

double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b) {
  double concordant = 0, discordant = 0, ties_a = 0, ties_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = i + 1; j < a.size(); ++j) {
      const double da = a[i] - a[j], db = b[i] - b[j];
      if (da == 0 && db == 0) continue;
      if (da == 0) {
        ++ties_a;
      } else if (db == 0) {
        ++ties_b;
      } else {
        (da * db > 0 ? concordant : discordant) += 1;
      }
    }
  }
  const double denom =
      std::sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b));
  return denom > 0 ? (concordant - discordant) / denom : std::nan("");
}

namespace {

// One held-out position made ready for the move metrics: its legal moves, every move's multi-PV
// score, the tokens after each move and (for a scored position) the reference search's best
// move. Empty when there is nothing to choose between, the engine did not score every move, or a
// position wanted only as a puzzle is not one; such positions skip the rest of the work,
// the deep reference search above all. Every search starts from a cleared engine, so the order
// of the searches does not change their results.
std::optional<ChessValueTask::MovePosition> prepare_position(chess::RestartingEngine& engine,
                                                             const std::string& fen,
                                                             const std::string& where,
                                                             const ChessDataConfig& data,
                                                             bool puzzle_only) {
  ChessValueTask::MovePosition p;
  p.scored = !puzzle_only;
  p.moves = engine.legal_moves(fen);
  if (p.moves.size() < 2) return std::nullopt;
  engine.new_game();
  const auto all =
      engine.search(fen, {}, chess::SearchLimit{static_cast<int>(data.ranking_depth), 0},
                    static_cast<int>(p.moves.size()));
  std::map<std::string, double> by_move;
  for (const auto& line : all.lines)
    if (!line.pv.empty()) by_move[line.pv.front()] = rank_score(line.score);
  if (by_move.size() != p.moves.size()) return std::nullopt;
  for (const auto& m : p.moves) p.engine_scores.push_back(by_move.at(m));
  if (const auto puzzle = chess::find_mate_puzzle(engine, fen, p.moves, all)) {
    p.mate_in = puzzle->mate_in;
    p.solution = puzzle->solution;
  }
  if (puzzle_only && p.mate_in == 0) return std::nullopt;  // a won position, but not a puzzle
  for (const auto& m : p.moves) {
    const auto t = chess::encode_fen(engine.fen_after(fen, {m}), str(where, " after ", m));
    p.successors.insert(p.successors.end(), t.begin(), t.end());
  }
  if (p.scored) {
    engine.new_game();
    p.reference =
        engine.search(fen, {}, chess::SearchLimit{static_cast<int>(data.reference_depth), 0})
            .best_move;
  }
  return p;
}

}  // namespace

void ChessValueTask::prepare_move_positions(const std::string& engine_path) {
  const auto t0 = std::chrono::steady_clock::now();
  // Restarted if it crashes or stalls: every search starts from a cleared engine, so a fresh one
  // answers as the old would have.
  chess::RestartingEngine engine(engine_path);
  engine.set_option("Threads", "1");
  const std::string key = chess::move_cache_key(
      data_.dir + "/val.bin", engine.name(),
      str("move_positions ", data_.move_positions, "; puzzles ", data_.puzzles, "; ranking_depth ",
          data_.ranking_depth, "; reference_depth ", data_.reference_depth, "; mate check depth ",
          chess::kMateCheckDepth));
  const std::string cache = chess::move_cache_path(key);
  if (read_cached_move_positions(cache, key, t0)) return;
  const auto records = chess::read_positions(data_.dir, "val");
  const std::string file = data_.dir + "/val.bin";
  int64_t scored = 0, puzzles = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const bool want_scored = scored < data_.move_positions;
    // Mate puzzles are rare among the first held-out positions, so more are sought among the
    // rest: those labelled as won for the side to move (a mate the labelling search found).
    const bool want_puzzle = puzzles < data_.puzzles && records[i].win_prob >= 1.0f;
    if (!want_scored && !want_puzzle) {
      if (puzzles >= data_.puzzles) break;
      continue;
    }
    const std::string fen = chess::record_fen(records[i]), where = str(file, ": record ", i);
    std::optional<MovePosition> p;
    try {
      p = prepare_position(engine, fen, where, data_, /*puzzle_only=*/!want_scored);
    } catch (const chess::EngineError& e) {
      throw chess::EngineError(str(where, " (FEN \"", fen, "\"): ", e.what()));  // which one
    }
    if (!p) continue;
    scored += p->scored;
    puzzles += p->mate_in > 0;
    move_positions_.push_back(std::move(*p));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(str("chess move metrics: ", scored, " held-out positions and ", puzzles,
                " mate puzzles prepared with ", engine.name(), " in ", format_number(s, 3), " s"));
  write_move_cache(cache, key);
}

bool ChessValueTask::read_cached_move_positions(const std::string& cache, const std::string& key,
                                                std::chrono::steady_clock::time_point t0) {
  if (cache.empty()) return false;
  const auto text = read_whole_file(cache);
  if (!text) return false;
  try {
    auto cached = chess::parse_move_cache(*text, key, cache);
    if (!cached) return false;
    move_positions_ = std::move(*cached);
    chess::keep_recent_move_caches(cache);
  } catch (const InputError& e) {
    log::warn(
        str("chess move metrics: ignoring a damaged cache (", e.what(), "); preparing again"));
    return false;
  }
  int64_t scored = 0, puzzles = 0;
  for (const auto& p : move_positions_) {
    scored += p.scored;
    puzzles += p.mate_in > 0;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(str("chess move metrics: ", scored, " held-out positions and ", puzzles,
                " mate puzzles read from ", cache, " in ", format_number(s, 3), " s"));
  return true;
}

// A cache that cannot be written costs the next run the preparation, nothing more: warn only.
void ChessValueTask::write_move_cache(const std::string& cache, const std::string& key) const {
  if (cache.empty()) return;
  try {
    std::filesystem::create_directories(std::filesystem::path(cache).parent_path());
    replace_file_durably(cache, chess::format_move_cache(key, move_positions_));
    chess::keep_recent_move_caches(cache);
  } catch (const std::exception& e) {
    log::warn(str("chess move metrics: could not keep them in ", cache, " (", e.what(), ")"));
  }
}

Metrics ChessValueTask::move_metrics() {
  Metrics m;
  if (move_positions_.empty()) return m;
  std::vector<uint8_t> all;
  for (const auto& p : move_positions_)
    all.insert(all.end(), p.successors.begin(), p.successors.end());
  const auto tokens = torch::from_blob(
      all.data(), {static_cast<int64_t>(all.size()) / chess::kFenTokens, chess::kFenTokens},
      torch::kUInt8);
  std::vector<double> values;  // each successor's value for the side to move there
  for (int64_t i = 0; i < tokens.size(0); i += 1024) {
    const auto v =
        loss_->value(net_->forward(inputs(tokens.slice(0, i, std::min(tokens.size(0), i + 1024)))))
            .to(torch::kDouble)
            .cpu()
            .contiguous();
    values.insert(values.end(), v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  }
  double right = 0, scored = 0, tau_sum = 0, taus = 0;
  double solved[3] = {0, 0, 0}, puzzles[3] = {0, 0, 0};
  size_t at = 0;
  for (const auto& p : move_positions_) {
    // The mover's value of each move: the opponent's value after it, turned round.
    std::vector<double> mine;
    for (size_t k = 0; k < p.moves.size(); ++k) mine.push_back(1 - values[at + k]);
    at += p.moves.size();
    const size_t pick =
        static_cast<size_t>(std::max_element(mine.begin(), mine.end()) - mine.begin());
    if (p.scored) {
      right += p.moves[pick] == p.reference;
      scored += 1;
      const double tau = kendall_tau_b(mine, p.engine_scores);
      if (!std::isnan(tau)) {
        tau_sum += tau;
        ++taus;
      }
    }
    if (p.mate_in > 0) {
      puzzles[p.mate_in] += 1;
      solved[p.mate_in] += p.moves[pick] == p.solution;
    }
  }
  if (scored > 0) m["chess/action_accuracy"] = right / scored;
  if (taus > 0) m["chess/kendall_tau"] = tau_sum / taus;
  for (int k : {1, 2}) {
    m[str("chess/mate_in_", k, "_puzzles")] = puzzles[k];
    if (puzzles[k] > 0) m[str("chess/mate_in_", k, "_accuracy")] = solved[k] / puzzles[k];
  }
  return m;
}

Metrics ChessValueTask::evaluate(int64_t /*step*/) {
  torch::NoGradGuard no_grad;
  net_->eval();
  double sq = 0, log_loss = 0, loss = 0;
  const int64_t n = val_tokens_.size(0), chunk = 1024;
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t j = std::min(n, i + chunk);
    const auto out = net_->forward(inputs(val_tokens_.slice(0, i, j)));
    const auto y = val_targets_.slice(0, i, j).to(device_).to(torch::kDouble);
    const auto v = loss_->value(out).to(torch::kDouble);
    sq += (v - y).pow(2).sum().item<double>();
    // The prediction as a probability: clipped so that a confident miss costs a finite amount.
    const auto p = v.clamp(1e-6, 1 - 1e-6);
    log_loss += -(y * p.log() + (1 - y) * (1 - p).log()).sum().item<double>();
    loss += loss_->loss(out, y.to(torch::kFloat)).item<double>() * static_cast<double>(j - i);
  }
  Metrics m = move_metrics();
  net_->train();
  const double dn = static_cast<double>(n);
  m["chess/value_mse"] = sq / dn;
  m["chess/log_loss"] = log_loss / dn;
  m["val/loss"] = loss / dn;
  return m;
}

Metrics ChessValueTask::data_facts() {
  // The floor of chess/log_loss: the labels' own entropy.
  const auto y = val_targets_.to(torch::kDouble).clamp(1e-6, 1 - 1e-6);
  const double entropy = -(y * y.log() + (1 - y) * (1 - y).log()).mean().item<double>();
  const double var = val_targets_.to(torch::kDouble).var(/*unbiased=*/false).item<double>();
  return {{"data/train_positions", static_cast<double>(train_tokens_.size(0))},
          {"data/eval_positions", static_cast<double>(val_tokens_.size(0))},
          {"data/label_entropy", entropy},
          {"data/label_variance", var}};
}

std::string ChessValueTask::summary(const Metrics& last_eval) const {
  const auto it = last_eval.find("chess/value_mse");
  if (it == last_eval.end()) return "";
  return str("summary: chess value mse ", format_number(it->second, 4), ", log loss ",
             format_number(last_eval.at("chess/log_loss"), 4), " on ", val_tokens_.size(0),
             " held-out positions");
}

const hooks::ValueView* ChessValueTask::value_view() {
  if (!view_.net) {
    view_.net = net_.get();
    view_.loss = loss_.get();
    view_.eval_inputs =
        inputs(val_tokens_.slice(0, 0, std::min<int64_t>(512, val_tokens_.size(0))));
    const auto targets = val_targets_.slice(0, 0, view_.eval_inputs.size(0)).to(device_);
    view_.eval_targets = [targets](int64_t) { return targets; };
  }
  return &view_;
}

namespace {

// Lower bounds (train/memory_estimate.h): the tokens and labels on the host, the network with
// gradients and Adam moments, and one batch's one-hot inputs.
MemoryEstimate estimate_chess_memory(const ExperimentConfig& cfg, int64_t /*world_size*/) {
  const auto& s = cfg.task_sections<ChessValueSections>();
  MemoryEstimate e;
  const int64_t outputs = value::make_value_loss(s.value)->head_outputs();
  add_training_state(
      e,
      static_cast<double>(models::value_net_parameter_count(
          s.model, std::vector<int64_t>{chess::kFenTokens, chess::fen_vocab_size()}, outputs)),
      1.0, kValueNetSizeKeys);
  e.add(
      "one-hot batch",
      4.0 * static_cast<double>(cfg.train.batch_size) * chess::kFenTokens * chess::fen_vocab_size(),
      "train.batch_size");
  return e;
}

const bool registered = register_task<ChessValueSections, ChessValueTask>(
    "chess_value", "a value network on Stockfish-labelled chess positions (stoch data chess)",
    "chess/value_mse", estimate_chess_memory);

}  // namespace

}  // namespace stoch::train
