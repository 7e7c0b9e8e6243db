// Hook "spectral": does the representation align with the predictive similarity operator?
// ("A Markov Categorical Framework for Language Modeling": NLL training acts as implicit
// spectral contrastive learning.) On N held-out positions, in float64:
//   H     [N, d] final hidden states,   G = row-normalised unembedding [V, d],
//   Gbar  [N, d] prototypes P G, with P the exact data conditionals (source: exact), the model's
//         softmax (plug-in) or one-hot next tokens (one_hot); both centred.
//   K = Gbar Gbar^T (never formed: its spectrum comes from the SVD of Gbar).
// Logged (r in {8, 16, 32, 64} up to d), each also against a permutation null (rows of Gbar
// shuffled) as .../null:
//   diag/spectral/k_effective_rank   exp entropy of K's normalised eigenvalues
//   diag/spectral/k_eig_<i>          K's top 8 eigenvalues over N (i = 1..8)
//   diag/spectral/k_share_r<r>       the share of K's trace its top r eigenvalues hold
//   diag/spectral/g_rank             the numerical rank k of Gbar (an HMM's exact prototypes:
//                                    at most states - 1); H's is judged with the epsilon of
//                                    the forward pass's dtype (float32 in general)
//   diag/spectral/kyfan_r<r>         top-r eigenvalues of Hw^T K Hw / N over K's top r, in [0, 1]
//   diag/spectral/overlap_r<r>       ||U_H,r'^T U_G,r'||_F^2 / r' for the top-r' singular
//                                    subspaces, r' = min(r, rank)
//   diag/spectral/cca_r<r>           mean of the top min(r, ranks) canonical correlations of H
//                                    and Gbar (principal angles between their spans)
//   diag/spectral/cka                linear CKA(H, Gbar)
// Costs O(N d^2): no N x N matrix is formed.
#include <torch/torch.h>

#include "core/strings.h"
#include "hooks/hook.h"
#include "hooks/spectral.h"

namespace stoch::hooks {
namespace {

struct SpectralParams : config::VisitableOf<SpectralParams> {
  std::string prototypes = "exact";
  int64_t max_positions = 4096;
  double eps = 1e-6;
  int64_t seed = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("prototypes", prototypes,
      "P in Gbar = P G: exact data conditionals (else plug-in), plug_in, one_hot",
      Spec().one_of({"exact", "plug_in", "one_hot"}));
    v("max_positions", max_positions, "held-out positions N (at least 8 d recommended)",
      Spec().at_least(2));
    v("eps", eps, "ridge added to the covariance of H before whitening", Spec().above(0));
    v("seed", seed, "seed of the permutation null (its own generator)", Spec().at_least(0));
  }
};

class SpectralHook : public Hook {
 public:
  explicit SpectralHook(const SpectralParams& p) : p_(p) {}

  Metrics run(const HookContext& ctx) override {
    const LmView& lm = *ctx.lm;
    const int64_t L = lm.eval_windows.size(1), T = L - 1;
    const int64_t n_windows =
        std::max<int64_t>(1, std::min(lm.eval_windows.size(0), (p_.max_positions + T - 1) / T));
    const auto w = lm.eval_windows.slice(0, 0, n_windows);
    const auto h = lm.model->hidden(w.slice(1, 0, T));
    const int64_t V = lm.source ? lm.source->vocab_size() : lm.model->config().vocab_size;
    auto G = lm.model->unembedding().slice(0, 0, V).to(torch::kDouble).cpu();
    G = G / G.norm(2, 1, true).clamp_min(1e-12);

    torch::Tensor P;
    std::string used = p_.prototypes;
    if (used == "exact") {
      P = exact_target_conditionals(lm, w);
      if (!P.defined()) used = "plug_in";
    }
    if (used == "plug_in")
      P = torch::softmax(lm.model->logits(h).slice(-1, 0, V).to(torch::kDouble), -1).cpu();
    if (used == "one_hot") P = torch::one_hot(w.slice(1, 1, L), V).to(torch::kDouble).cpu();

    const int64_t N = std::min(p_.max_positions, n_windows * T);
    // In the forward pass's dtype: its round-off decides H's numerical rank.
    const auto H = h.cpu().reshape({-1, h.size(-1)}).slice(0, 0, N);
    const auto Gbar = torch::matmul(P.reshape({-1, V}).slice(0, 0, N), G);

    Metrics m = spectral_alignment(H, Gbar, p_.eps, "diag/spectral/");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(p_.seed) +
                                                        static_cast<uint64_t>(ctx.step));
    const auto perm = torch::randperm(N, gen, torch::kLong);
    for (const auto& [k, v] :
         spectral_alignment(H, Gbar.index_select(0, perm), p_.eps, "diag/spectral/"))
      // K's spectrum does not change when its rows are shuffled.
      if (k.rfind("diag/spectral/k_", 0) != 0) m[k + "/null"] = v;
    m["diag/spectral/prototypes_exact"] = used == "exact" ? 1.0 : 0.0;
    return m;
  }

 private:
  SpectralParams p_;
};

const bool registered = register_hook<SpectralParams, SpectralHook>(
    "spectral", "alignment of hidden states with the predictive similarity operator", Needs::kLm);

}  // namespace
}  // namespace stoch::hooks
