#include "train/zero.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/errors.h"
#include "core/strings.h"
#include "train/distributed.h"

namespace stoch::train {

FlatLayout::FlatLayout(std::vector<std::string> n, std::vector<int64_t> sizes, int64_t w)
    : names(std::move(n)), numels(std::move(sizes)), world(w) {
  for (const int64_t k : numels) {
    offsets.push_back(numel);
    numel += k;
  }
  shard = (numel + world - 1) / world;
}

nlohmann::json FlatLayout::to_json() const {
  nlohmann::json params = nlohmann::json::array();
  for (size_t i = 0; i < names.size(); ++i) params.push_back({names[i], numels[i]});
  return {{"shards", world}, {"shard_numel", shard}, {"params", params}};
}

FlatLayout FlatLayout::from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    std::vector<std::string> names;
    std::vector<int64_t> numels;
    // Integers checked before get<>(), which would cast a float whatever its range.
    const auto count = [](const nlohmann::json& v) {
      if (!v.is_number_unsigned())
        throw std::runtime_error("a count is not a non-negative integer");
      return v.get<int64_t>();
    };
    for (const auto& p : j.at("params")) {
      names.push_back(p.at(0).get<std::string>());
      numels.push_back(count(p.at(1)));
    }
    FlatLayout l(std::move(names), std::move(numels), count(j.at("shards")));
    if (l.world < 1 || l.shard != count(j.at("shard_numel")))
      throw std::runtime_error("shard sizes do not add up");
    return l;
  } catch (const std::exception& e) {
    throw InputError(stoch::str(origin, ": optimizer_layout is not a layout (", e.what(), ")"));
  }
}

std::string shard_file_stem(int64_t rank) {
  return stoch::str("optimizer.shard-", rank);
}

namespace {

// The part of parameter `param` that lies in this rank's elements.
struct Piece {
  size_t param;
  int64_t begin, end;  // elements of the parameter
  int64_t at;          // where they start in this rank's shard
};

}  // namespace

struct ShardedAdamW::Impl {
  Distributed* dist;
  std::vector<torch::Tensor> params;
  FlatLayout layout;
  bool shard_gradients;
  std::vector<Piece> pieces;
  std::vector<torch::Tensor> views;   // each piece's elements of its parameter
  torch::Tensor exp_avg, exp_avg_sq;  // this rank's moments, end to end
  torch::Tensor grad;                 // gradient sharding: this rank's summed gradient
  std::unique_ptr<optim::AdamW> adamw;

  torch::Tensor flat_grads() const {
    auto flat = torch::zeros({layout.shard * layout.world}, params[0].options());
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].grad().defined())
        flat.narrow(0, layout.offsets[i], layout.numels[i]).copy_(params[i].grad().reshape(-1));
    return flat;
  }
};

ShardedAdamW::ShardedAdamW(Distributed& dist,
                           const std::vector<std::pair<std::string, torch::Tensor>>& named,
                           optim::OptimConfig cfg, bool shard_gradients)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.dist = &dist;
  s.shard_gradients = shard_gradients;
  std::vector<std::string> names;
  std::vector<int64_t> numels;
  for (const auto& [name, p] : named) {
    if (!p.requires_grad()) continue;
    if (!p.is_contiguous() || p.scalar_type() != torch::kFloat)
      throw InputError(stoch::str("dist.shard: parameter ", name,
                                  " is not a contiguous float32 tensor; use dist.shard=none"));
    names.push_back(name);
    numels.push_back(p.numel());
    s.params.push_back(p);
  }
  s.layout = FlatLayout(names, numels, dist.world_size());
  const auto opts = s.params.empty() ? torch::TensorOptions() : s.params[0].options();
  s.exp_avg = torch::zeros({s.layout.shard}, opts);
  s.exp_avg_sq = torch::zeros({s.layout.shard}, opts);
  const int64_t lo = dist.rank() * s.layout.shard, hi = lo + s.layout.shard;
  std::vector<optim::AdamW::Param> pieces;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const int64_t a = std::max(lo, s.layout.offsets[i]);
    const int64_t b = std::min(hi, s.layout.offsets[i] + s.layout.numels[i]);
    if (a >= b) continue;
    const Piece piece{i, a - s.layout.offsets[i], b - s.layout.offsets[i], a - lo};
    s.pieces.push_back(piece);
    const auto view = s.params[i].detach().view(-1).narrow(0, piece.begin, b - a);
    s.views.push_back(view);
    pieces.push_back({names[i], view, optim::decays(names[i], s.params[i]),
                      s.exp_avg.narrow(0, piece.at, b - a),
                      s.exp_avg_sq.narrow(0, piece.at, b - a)});
  }
  s.adamw = std::make_unique<optim::AdamW>(std::move(pieces), cfg);
}

ShardedAdamW::~ShardedAdamW() = default;

void ShardedAdamW::zero_grad() {
  for (auto& p : impl_->params) p.mutable_grad() = torch::Tensor();
  impl_->adamw->zero_grad();
  impl_->grad = torch::Tensor();
}

void ShardedAdamW::reduce_gradients() {
  Impl& s = *impl_;
  if (!s.shard_gradients || s.params.empty()) return;
  torch::NoGradGuard no_grad;
  s.grad = torch::empty({s.layout.shard}, s.params[0].options());
  s.dist->reduce_scatter_sum(s.grad, s.flat_grads());
  // Only the shard is needed from here on.
  for (auto& p : s.params) p.mutable_grad() = torch::Tensor();
}

torch::Tensor ShardedAdamW::clip(double max_norm) {
  Impl& s = *impl_;
  torch::NoGradGuard no_grad;
  // Every rank holds the whole summed gradient: the global norm is local.
  if (!s.shard_gradients) return optim::clip_grad_norm(s.params, max_norm);
  // The squares of every shard, summed over the ranks (in double: the ranks' partial sums
  // are added in a fixed order, and the result must not depend on how the elements fall).
  auto sq = s.grad.defined() ? s.grad.to(torch::kDouble).square().sum().reshape({1})
                             : torch::zeros({1}, torch::kDouble);
  s.dist->all_reduce_sum(sq);
  const auto total = sq.sqrt().to(torch::kFloat).reshape({});
  if (s.grad.defined()) s.grad.mul_(optim::clip_coefficient(total, max_norm));
  return total;
}

void ShardedAdamW::step(double lr) {
  Impl& s = *impl_;
  if (s.params.empty()) return;
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < s.pieces.size(); ++k) {
    const Piece& piece = s.pieces[k];
    const int64_t n = piece.end - piece.begin;
    if (s.shard_gradients) {
      if (s.grad.defined()) s.views[k].mutable_grad() = s.grad.narrow(0, piece.at, n);
    } else if (s.params[piece.param].grad().defined()) {
      s.views[k].mutable_grad() = s.params[piece.param].grad().view(-1).narrow(0, piece.begin, n);
    }
  }
  s.adamw->step(lr);
  // Every rank's updated elements, to every rank.
  auto mine = torch::zeros({s.layout.shard}, s.params[0].options());
  for (size_t k = 0; k < s.pieces.size(); ++k)
    mine.narrow(0, s.pieces[k].at, s.views[k].numel()).copy_(s.views[k]);
  auto all = torch::empty({s.layout.shard * s.layout.world}, mine.options());
  s.dist->all_gather_flat(all, mine);
  for (size_t i = 0; i < s.params.size(); ++i)
    s.params[i].view(-1).copy_(all.narrow(0, s.layout.offsets[i], s.layout.numels[i]));
}

std::map<std::string, double> ShardedAdamW::grad_squares() const {
  const Impl& s = *impl_;
  std::map<std::string, double> out;
  if (!s.shard_gradients || s.params.empty()) return out;
  torch::NoGradGuard no_grad;
  // On the parameters' device: NCCL reduces device tensors only.
  auto sums = torch::zeros({static_cast<int64_t>(s.params.size())},
                           s.params[0].options().dtype(torch::kDouble));
  if (s.grad.defined())
    for (const Piece& piece : s.pieces)
      sums[static_cast<int64_t>(piece.param)] +=
          s.grad.narrow(0, piece.at, piece.end - piece.begin).to(torch::kDouble).square().sum();
  s.dist->all_reduce_sum(sums);
  sums = sums.cpu();
  const auto a = sums.accessor<double, 1>();
  for (size_t i = 0; i < s.params.size(); ++i) out[s.layout.names[i]] = a[static_cast<int64_t>(i)];
  return out;
}

TensorList ShardedAdamW::shard_state() const {
  TensorList out{{"exp_avg", impl_->exp_avg}, {"exp_avg_sq", impl_->exp_avg_sq}};
  for (auto& [name, t] : impl_->adamw->state())
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".step") == 0)
      out.emplace_back(name, t);
  return out;
}

void ShardedAdamW::load_state(const TensorList& whole) {
  const Impl& s = *impl_;
  std::map<std::string, torch::Tensor> by_name(whole.begin(), whole.end());
  TensorList mine;
  for (const auto& piece : s.pieces) {
    const std::string& name = s.layout.names[piece.param];
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto it = by_name.find(name + suffix);
      if (it == by_name.end() || it->second.numel() != s.layout.numels[piece.param])
        throw InputError(stoch::str("optimizer state lacks ", name, suffix, " of ",
                                    s.layout.numels[piece.param], " elements"));
      mine.emplace_back(name + suffix,
                        it->second.reshape(-1).narrow(0, piece.begin, piece.end - piece.begin));
    }
    auto it = by_name.find(name + ".step");
    if (it == by_name.end()) throw InputError(stoch::str("optimizer state lacks ", name, ".step"));
    mine.emplace_back(name + ".step", it->second);
  }
  impl_->adamw->load_state(mine);
}

int64_t ShardedAdamW::state_bytes() const {
  return static_cast<int64_t>((impl_->exp_avg.numel() + impl_->exp_avg_sq.numel()) *
                                  impl_->exp_avg.element_size() +
                              impl_->pieces.size() * sizeof(float));
}

const FlatLayout& ShardedAdamW::layout() const {
  return impl_->layout;
}

int64_t unsharded_state_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  int64_t bytes = 0;
  for (const auto& [name, p] : params)
    if (p.requires_grad()) bytes += 2 * p.numel() * p.element_size() + sizeof(float);
  return bytes;
}

TensorList whole_optimizer_state(const Checkpoint& c,
                                 const std::map<std::string, std::vector<int64_t>>& shapes) {
  if (auto it = c.tensors.find("optimizer"); it != c.tensors.end()) return it->second;
  const std::string state_file = c.dir + "/state.json";
  if (!c.state.contains("optimizer_layout"))
    throw InputError(
        stoch::str(c.dir, ": no optimizer.safetensors and no optimizer_layout in ", "state.json"));
  const FlatLayout l = FlatLayout::from_json(c.state.at("optimizer_layout"), state_file);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> m, v;
  std::map<std::string, torch::Tensor> steps;
  for (int64_t r = 0; r < l.world; ++r) {
    const std::string file = stoch::str(c.dir, "/", shard_file_stem(r), ".safetensors");
    auto it = c.tensors.find(shard_file_stem(r));
    if (it == c.tensors.end())
      throw InputError(
          stoch::str(file, ": missing (state.json's optimizer_layout has ", l.world, " shards)"));
    std::map<std::string, torch::Tensor> t(it->second.begin(), it->second.end());
    for (const char* key : {"exp_avg", "exp_avg_sq"})
      if (!t.count(key) || t.at(key).numel() != l.shard)
        throw InputError(stoch::str(file, ": ", key, " is not a shard of ", l.shard,
                                    " elements, as optimizer_layout says"));
    m.push_back(t.at("exp_avg"));
    v.push_back(t.at("exp_avg_sq"));
    for (auto& [name, x] : t) {
      if (name.size() <= 5 || name.compare(name.size() - 5, 5, ".step") != 0) continue;
      // A parameter split between shards has its count in each: they must agree.
      if (auto seen = steps.find(name);
          seen != steps.end() && seen->second.item<double>() != x.item<double>())
        throw InputError(stoch::str(file, ": ", name, " is ", x.item<double>(), " but ",
                                    seen->second.item<double>(),
                                    " in the shard before (shards of different steps)"));
      steps[name] = x;
    }
  }
  const auto flat_m = torch::cat(m), flat_v = torch::cat(v);
  TensorList out;
  for (size_t i = 0; i < l.names.size(); ++i) {
    const std::string& name = l.names[i];
    auto shape = shapes.find(name);
    if (shape == shapes.end())
      throw InputError(stoch::str(state_file, ": optimizer_layout names ", name,
                                  ", which the model does not have"));
    int64_t n = 1;
    for (const int64_t d : shape->second) n *= d;
    if (n != l.numels[i])
      throw InputError(stoch::str(state_file, ": optimizer_layout gives ", name, " ", l.numels[i],
                                  " elements, but the model's has ", n));
    if (!steps.count(name + ".step"))
      throw InputError(stoch::str(c.dir, ": no shard holds ", name, ".step"));
    out.emplace_back(name + ".exp_avg",
                     flat_m.narrow(0, l.offsets[i], l.numels[i]).reshape(shape->second).clone());
    out.emplace_back(name + ".exp_avg_sq",
                     flat_v.narrow(0, l.offsets[i], l.numels[i]).reshape(shape->second).clone());
    out.emplace_back(name + ".step", steps.at(name + ".step"));
  }
  return out;
}

}  // namespace stoch::train
