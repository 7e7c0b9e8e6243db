// Hook "surplus": how much the hidden state knows about the token after next beyond what the
// next token itself says (the information surplus EAGLE-style speculative decoding exploits).
// For K = 2, S_2 = H(x_{i+2} | x_{i+1}) - H(x_{i+2} | h_i, x_{i+1}), estimated on held-out windows:
//   diag/ce_bigram    CE of a smoothed bigram table counted over fresh training windows (the
//                     probe's and count_windows more per call, accumulated over the run)
//   diag/ce_probe     CE of the probe q(x_{i+2} | h_i, x_{i+1}) (generate/surplus_probe.h)
//   diag/surplus      ce_bigram - ce_probe
//   diag/surplus_ceiling   U_2 = ce_bigram - NLL_model(x_{i+2} | x_<=i+1), with
//   diag/surplus_ceiling_se  its standard error over the windows, and
//   diag/surplus_efficiency  surplus / U_2 (NaN, logged as null, while U_2 <= 2 se)
//   diag/accept_proxy  mean sum_w min(q(w), p_model(w)) (1 - total variation), and
//   diag/greedy_agreement  share of positions where argmax q == argmax p_model
// The probe's CE bounds H(x_{i+2} | h_i, x_{i+1}) from above, but the table's CE exceeds
// H(x_{i+2} | x_{i+1}) by its own error (its KL from the true conditional, large while few
// tokens per context were counted), so the surplus is a lower bound only up to that error. With
// a source that knows its bigram, diag/ce_bigram_exact, diag/surplus_exact and
// diag/surplus_ceiling_exact use the exact bigram instead (a lower bound); with one that knows
// its conditionals, the Bayes-optimal surplus on the same positions (diag/surplus_bayes) and for
// infinite context (diag/surplus_bayes_rate = H(x_2|x_1) - rate).
// horizon K > 2 chains the probe on its own features (as a drafter does) and adds, per k,
// diag/ce_probe_k<k>, diag/ce_ngram_k<k>, diag/surplus_k<k> and their sum diag/surplus_total.
// The probe trains online, with its own Adam (optim/adamw.h) and random stream, on fresh windows of
// the training split that the trainer never draws (indices far from its cursor): one pass over
// their positions per call by default, so it never sees a position twice and cannot memorise them.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/rng.h"
#include "core/strings.h"
#include "core/torch/state_tensors.h"
#include "generate/surplus_probe.h"
#include "hooks/hook.h"
#include "hooks/ngram_counts.h"
#include "optim/adamw.h"

namespace stoch::hooks {
namespace {

// The probe optimiser's state sits in the hook's state under this prefix.
constexpr const char* kAdamPrefix = "adam.";

struct SurplusParams : config::VisitableOf<SurplusParams> {
  int64_t horizon = 2;
  int64_t train_windows = 64;
  int64_t count_windows = 256;
  int64_t probe_epochs = 1;
  int64_t probe_batch = 128;
  double probe_lr = 3e-3;
  double smoothing = 0.1;
  int64_t max_windows = 64;
  int64_t seed = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("horizon", horizon,
      "K: predict tokens up to i + K from h_i and x_{i+1} (2 = token after next)",
      Spec().at_least(2).at_most(4));
    v("train_windows", train_windows, "fresh training windows the probe sees per call",
      Spec().at_least(1));
    v("count_windows", count_windows,
      "further fresh training windows per call that only the n-gram baseline counts",
      Spec().at_least(0));
    v("probe_epochs", probe_epochs,
      "passes over the fresh windows' positions per call (more overfits them)", Spec().at_least(0));
    v("probe_batch", probe_batch, "positions per probe step", Spec().at_least(1));
    v("probe_lr", probe_lr, "probe Adam learning rate", Spec().above(0));
    v("smoothing", smoothing, "add-alpha smoothing of the n-gram baseline counts", Spec().above(0));
    v("max_windows", max_windows, "held-out windows to evaluate on; 0 uses all",
      Spec().at_least(0));
    v("seed", seed, "seed of the probe's initialisation and position sampling");
  }
};

class SurplusHook : public Hook {
 public:
  explicit SurplusHook(const SurplusParams& p) : p_(p), rng_(mix_seed(p.seed, 0x5u)) {}

  Metrics run(const HookContext& ctx) override {
    const LmView& lm = *ctx.lm;
    models::LanguageModelImpl& model = *lm.model;
    const int64_t V = lm.source->vocab_size();
    const int64_t L = model.config().context;  // windows hold L + 1 tokens
    TORCH_CHECK(L >= p_.horizon, "surplus: model.context must be at least horizon");
    ensure_state(model.config().d_model, V, model.device());

    Metrics m;
    m["diag/probe_train_ce"] = train_probe(lm, L);
    evaluate(lm, m);
    return m;
  }

  TensorList state() const override {
    // Not yet rebuilt since a resume: the loaded state is still the hook's state.
    if (!probe_) return saved_;
    TensorList out;
    for (auto& t : generate::probe_tensors(*probe_))
      out.emplace_back(t.first, t.second.detach().cpu().clone());
    for (auto& t : adam_->state())
      out.emplace_back(kAdamPrefix + t.first, t.second.detach().cpu().clone());
    out.emplace_back("rng", rng_to_tensor(rng_));
    out.emplace_back("cursor", torch::tensor({cursor_}, torch::kLong));
    for (size_t k = 0; k < ngrams_.size(); ++k)
      for (auto& t : ngrams_[k].state(stoch::str("ngram", k + 2, "."))) out.push_back(t);
    return out;
  }

  void load_state(const TensorList& saved) override { saved_ = saved; }

 private:
  // Builds the probe, its optimiser and the count tables on first use, from a loaded checkpoint
  // when there is one.
  void ensure_state(int64_t d, int64_t V, const torch::Device& device) {
    if (probe_) return;
    const std::string what = "surplus hook state";
    probe_ = saved_.empty()
                 ? generate::SurplusProbe(d, mix_seed(static_cast<uint64_t>(p_.seed), 0x9u))
                 : generate::probe_from_state(saved_, what);
    probe_->to(device);
    // Plain Adam: no weight decay, PyTorch's default betas.
    optim::OptimConfig adam;
    adam.lr = p_.probe_lr;
    adam.weight_decay = 0.0;
    adam.beta1 = 0.9;
    adam.beta2 = 0.999;
    adam.eps = 1e-8;
    adam_ = std::make_unique<optim::AdamW>(probe_->named_parameters().pairs(), adam);
    for (int64_t k = 2; k <= p_.horizon; ++k) ngrams_.emplace_back(k - 1, V);
    if (!saved_.empty()) restore(what);
  }

  void restore(const std::string& what) {
    const auto get = [&](const std::string& name) { return tensor_named(saved_, name, what); };
    TensorList adam;
    for (const auto& t : saved_)
      if (t.first.rfind(kAdamPrefix, 0) == 0)
        adam.emplace_back(t.first.substr(std::strlen(kAdamPrefix)), t.second);
    if (find_tensor(saved_, "counters")) {
      // A state with "counters" holds the moments by parameter index and one shared step count.
      const auto counters = get("counters");
      int64_t i = 0;
      for (const auto& p : probe_->named_parameters()) {
        adam.emplace_back(p.key() + ".exp_avg", get(stoch::str("adam_m.", i)));
        adam.emplace_back(p.key() + ".exp_avg_sq", get(stoch::str("adam_v.", i++)));
        adam.emplace_back(p.key() + ".step", counters[0].to(torch::kFloat));
      }
      cursor_ = counters[1].item<int64_t>();
    } else {
      cursor_ = get("cursor").item<int64_t>();
    }
    adam_->load_state(adam);
    rng_ = rng_from_tensor(get("rng"), what);
    for (size_t k = 0; k < ngrams_.size(); ++k)
      ngrams_[k].load(saved_, stoch::str("ngram", k + 2, "."), what);
    saved_.clear();
  }

  // Features for predicting x_{i+2}, ..., x_{i+K} from h_i and the true tokens in between:
  // f_1 = probe(h_i, e(x_{i+1})), f_k = probe(f_{k-1}, e(x_{i+k})). Returns K - 1 logit tensors.
  std::vector<torch::Tensor> probe_logits(models::LanguageModelImpl& model, const torch::Tensor& h,
                                          const torch::Tensor& ahead, int64_t V) {
    const auto U = model.unembedding().detach().slice(0, 0, V);
    std::vector<torch::Tensor> out;
    auto f = h;
    for (int64_t k = 0; k + 1 < p_.horizon; ++k) {
      f = probe_->feature(f, model.embed(ahead.select(-1, k)).detach());
      out.push_back(torch::matmul(f, U.t()));
    }
    return out;
  }

  // `count` windows of the training split at indices the trainer's cursor never reaches.
  torch::Tensor train_windows(const LmView& lm, int64_t L, int64_t count) {
    constexpr uint64_t kProbeStream = uint64_t{1} << 52;
    auto w = torch::empty({count, L + 1}, torch::kInt);
    for (int64_t i = 0; i < count; ++i)
      lm.source->window(data::Split::kTrain, kProbeStream + static_cast<uint64_t>(cursor_++), L + 1,
                        w[i].data_ptr<int32_t>());
    return w;
  }

  double train_probe(const LmView& lm, int64_t L) {
    models::LanguageModelImpl& model = *lm.model;
    const int64_t V = lm.source->vocab_size(), K = p_.horizon;
    const auto windows = train_windows(lm, L, p_.train_windows);
    // The baseline counts the probe's windows and more: counting is cheap, and a table short of
    // counts reads high (by its KL from the true conditional), which the surplus inherits.
    const auto counted = torch::cat({windows, train_windows(lm, L, p_.count_windows)});
    const int32_t* w = counted.data_ptr<int32_t>();
    for (int64_t b = 0; b < counted.size(0); ++b)
      for (int64_t k = 2; k <= K; ++k)
        for (int64_t t = k - 1; t <= L; ++t)
          ngrams_[k - 2].add(w + b * (L + 1) + t - (k - 1), w[b * (L + 1) + t]);
    if (p_.probe_epochs == 0) return std::nan("");

    const auto device = model.device();
    const auto tokens = windows.to(torch::kLong).to(device);
    // Positions i = 0 .. L - K: h_i, then the K tokens x_{i+1} .. x_{i+K}.
    const int64_t P = L - K + 1;
    const auto h =
        model.hidden(tokens.slice(1, 0, L)).slice(1, 0, P).reshape({-1, model.config().d_model});
    const auto ahead = tokens.unfold(1, K, 1).slice(1, 1, P + 1).reshape({-1, K});  // [B*P, K]
    const int64_t N = h.size(0);

    torch::AutoGradMode grad(true);
    double sum = 0.0;
    int64_t steps = 0;
    std::vector<int64_t> order(static_cast<size_t>(N));
    for (int64_t e = 0; e < p_.probe_epochs; ++e) {
      // A fresh permutation per pass, from the hook's own stream (Fisher-Yates).
      for (int64_t j = 0; j < N; ++j) order[j] = j;
      for (int64_t j = N - 1; j > 0; --j)
        std::swap(order[j], order[static_cast<int64_t>(rng_.below(static_cast<uint64_t>(j + 1)))]);
      for (int64_t lo = 0; lo < N; lo += p_.probe_batch) {
        const int64_t hi = std::min(N, lo + p_.probe_batch);
        const auto sel = torch::from_blob(order.data() + lo, {hi - lo}, torch::kLong).to(device);
        const auto a = ahead.index_select(0, sel);
        const auto logits = probe_logits(model, h.index_select(0, sel), a, V);
        auto loss = torch::zeros({}, h.options());
        for (int64_t k = 0; k + 1 < K; ++k)
          loss = loss + torch::nn::functional::cross_entropy(logits[k], a.select(1, k + 1));
        for (auto& p : probe_->parameters()) p.mutable_grad() = torch::Tensor();
        loss.backward();
        adam_->step(p_.probe_lr);
        sum += loss.item<double>() / static_cast<double>(K - 1);
        ++steps;
      }
    }
    return sum / static_cast<double>(steps);  // mean training CE of this call's pass(es)
  }

  void evaluate(const LmView& lm, Metrics& m) {
    models::LanguageModelImpl& model = *lm.model;
    const int64_t V = lm.source->vocab_size(), K = p_.horizon, L = model.config().context;
    auto windows = lm.eval_windows;
    if (p_.max_windows > 0 && p_.max_windows < windows.size(0))
      windows = windows.slice(0, 0, p_.max_windows);
    const int64_t n = windows.size(0), P = L - K + 1;
    const auto h_all = model.hidden(windows.slice(1, 0, L));
    // Model log-probabilities: row t predicts x_{t+1}.
    const auto logp_model =
        torch::log_softmax(model.logits(h_all).slice(-1, 0, V).to(torch::kDouble), -1);
    const auto h = h_all.slice(1, 0, P).reshape({-1, model.config().d_model});
    const auto ahead = windows.unfold(1, K, 1).slice(1, 1, P + 1).reshape({-1, K});
    const auto logits = probe_logits(model, h, ahead, V);

    const auto cpu_windows = windows.to(torch::kInt).cpu().contiguous();
    const int32_t* w = cpu_windows.data_ptr<int32_t>();
    double total_surplus = 0.0, total_ceiling = 0.0;
    for (int64_t k = 2; k <= K; ++k) {
      const auto logq = torch::log_softmax(logits[k - 2].to(torch::kDouble), -1);
      const auto target = ahead.select(1, k - 1);
      const double ce_probe = -logq.gather(1, target.unsqueeze(1)).mean().item<double>();
      // Baseline: n-gram of the k - 1 tokens x_{i+1} .. x_{i+k-1}, per position [n, P].
      auto base = torch::empty({n, P}, torch::kDouble);
      double* bp = base.data_ptr<double>();
      for (int64_t b = 0; b < n; ++b)
        for (int64_t i = 0; i < P; ++i) {
          const int32_t* row = w + b * (L + 1);
          bp[b * P + i] = -ngrams_[k - 2].log_prob(row + i + 1, row[i + k], p_.smoothing);
        }
      const double ce_base = base.mean().item<double>();
      // The model's own loss on x_{i+k} given everything before it (row i + k - 1).
      const auto model_rows = logp_model.slice(1, k - 1, k - 1 + P).reshape({-1, V});
      const auto nll_rows = -model_rows.gather(1, target.unsqueeze(1)).view({n, P});
      const double nll_model = nll_rows.mean().item<double>();
      total_surplus += ce_base - ce_probe;
      total_ceiling += ce_base - nll_model;
      if (k == 2) {
        m["diag/ce_probe"] = ce_probe;
        m["diag/ce_bigram"] = ce_base;
        m["diag/surplus"] = ce_base - ce_probe;
        const double ceiling = ce_base - nll_model;
        m["diag/surplus_ceiling"] = ceiling;
        // The ceiling's standard error over the windows (positions within one correlate).
        const auto per_window = (base - nll_rows.cpu()).mean(1);
        const double se =
            n > 1 ? per_window.std().item<double>() / std::sqrt(static_cast<double>(n)) : 0.0;
        m["diag/surplus_ceiling_se"] = se;
        // A share of the ceiling only where there is one: below two standard errors (an
        // untrained model, or a source with no surplus) the ratio is noise over noise, and at
        // a ceiling <= 0 a ratio of two negatives would read as a share. It can exceed 1 where
        // the probe predicts x_{i+2} better than the model does.
        m["diag/surplus_efficiency"] = ceiling > 2 * se && ceiling > 0
                                           ? (ce_base - ce_probe) / ceiling
                                           : std::numeric_limits<double>::quiet_NaN();
        const auto q = logq.exp(), p = model_rows.exp();
        m["diag/accept_proxy"] = torch::minimum(q, p).sum(-1).mean().item<double>();
        m["diag/greedy_agreement"] =
            (q.argmax(-1) == p.argmax(-1)).to(torch::kDouble).mean().item<double>();
        add_bayes(lm, windows, P, m);
        // Against the exact bigram, where the source knows it: the table's own error left out.
        if (const auto it = m.find("diag/ce_bigram_exact"); it != m.end()) {
          m["diag/surplus_exact"] = it->second - ce_probe;
          m["diag/surplus_ceiling_exact"] = it->second - nll_model;
        }
      } else {
        m[stoch::str("diag/ce_probe_k", k)] = ce_probe;
        m[stoch::str("diag/ce_ngram_k", k)] = ce_base;
        m[stoch::str("diag/surplus_k", k)] = ce_base - ce_probe;
      }
    }
    if (K > 2) {
      m["diag/surplus_total"] = total_surplus;
      m["diag/surplus_total_ceiling"] = total_ceiling;
    }
  }

  // With a source that knows its bigram: the exact bigram's loss on these positions
  // (diag/ce_bigram_exact); and when it knows its conditionals too, the Bayes-optimal surplus,
  // the exact bigram's loss minus theirs, and H(x_2 | x_1) minus the entropy rate for infinite
  // context.
  static void add_bayes(const LmView& lm, const torch::Tensor& windows, int64_t P, Metrics& m) {
    const auto joint_v = lm.source->stationary_bigram();
    if (joint_v.empty()) return;
    const int64_t V = lm.source->vocab_size();
    const auto joint =
        torch::from_blob(const_cast<double*>(joint_v.data()), {V, V}, torch::kDouble);
    const auto cond = joint / joint.sum(1, true).clamp_min(1e-300);
    const auto w = windows.to(torch::kLong).cpu();
    const auto prev = w.slice(1, 1, P + 1).reshape({-1}), next = w.slice(1, 2, P + 2).reshape({-1});
    const auto log_bigram = cond.index({prev, next}).clamp_min(1e-300).log();
    m["diag/ce_bigram_exact"] = -log_bigram.mean().item<double>();
    const auto exact = exact_target_conditionals(lm, windows);  // [n, L, V]; row t is x_{t+1}
    if (!exact.defined()) return;
    const auto truth =
        exact.slice(1, 1, P + 1).reshape({-1, V}).gather(1, next.unsqueeze(1)).squeeze(1);
    m["diag/surplus_bayes"] = (truth.clamp_min(1e-300).log() - log_bigram).mean().item<double>();
    if (auto rate = lm.source->entropy_rate_nats()) {
      const double h_bigram = -(joint * cond.clamp_min(1e-300).log()).sum().item<double>();
      m["diag/surplus_bayes_rate"] = h_bigram - *rate;
    }
  }

  SurplusParams p_;
  Rng rng_;
  generate::SurplusProbe probe_{nullptr};
  std::unique_ptr<optim::AdamW> adam_;
  int64_t cursor_ = 0;
  std::vector<NgramCounts> ngrams_;
  TensorList saved_;
};

const bool registered = register_hook<SurplusParams, SurplusHook>(
    "surplus",
    "information surplus of hidden states over the next token (EAGLE-style "
    "probe against an n-gram baseline)",
    Needs::kLm, /*sampling_probe=*/true);

}  // namespace
}  // namespace stoch::hooks
