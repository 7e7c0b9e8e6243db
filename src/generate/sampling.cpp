#include "generate/sampling.h"

#include <torch/torch.h>

#include <algorithm>

namespace stoch::generate {
namespace {

int64_t draw_from(const torch::Tensor& probs, at::Generator& gen) {
  return torch::multinomial(probs.to(torch::kFloat).cpu(), 1, false, gen).item<int64_t>();
}

double uniform(at::Generator& gen) {
  return torch::rand({1}, gen, torch::TensorOptions().dtype(torch::kDouble)).item<double>();
}

// The last `keep` tokens of ids as a [1, keep] batch on the model's device.
torch::Tensor window(const std::vector<int64_t>& ids, int64_t keep, const torch::Device& device) {
  const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - keep);
  return torch::tensor(std::vector<int64_t>(ids.begin() + start, ids.end()), torch::kLong)
      .unsqueeze(0)
      .to(device);
}

}  // namespace

torch::Tensor sampling_probs(const torch::Tensor& logits_in, const SamplingParams& sp) {
  auto logits = logits_in.to(torch::kDouble);
  if (sp.vocab > 0) logits = logits.slice(0, 0, sp.vocab);
  if (sp.temperature == 0.0) return torch::zeros_like(logits).index_fill_(0, logits.argmax(), 1.0);
  logits = logits / sp.temperature;
  if (sp.top_k > 0 && sp.top_k < logits.size(0)) {
    const auto kth = std::get<0>(logits.topk(sp.top_k)).min();
    logits = logits.masked_fill(logits < kth, -INFINITY);
  }
  auto probs = torch::softmax(logits, -1);
  if (sp.top_p < 1.0) {
    auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
    // Keep a token while the mass before it is below top_p: the smallest set reaching top_p.
    auto drop = (sorted.cumsum(-1) - sorted) >= sp.top_p;
    drop[0] = false;  // the most likely token always stays: top_p = 0 is greedy
    probs = probs.scatter(0, order, sorted.masked_fill(drop, 0.0));
    probs = probs / probs.sum();
  }
  return probs;
}

std::vector<int64_t> sample_plain(models::LanguageModelImpl& model, std::vector<int64_t> ids,
                                  int64_t n, const SamplingParams& sp, at::Generator& gen,
                                  SamplingStats* stats) {
  torch::NoGradGuard no_grad;
  const int64_t ctx = model.config().context;
  const auto device = model.device();
  for (int64_t i = 0; i < n; ++i) {
    const auto logits = model.forward(window(ids, ctx, device))[0][-1];
    ids.push_back(draw_from(sampling_probs(logits, sp), gen));
    if (stats) ++stats->model_calls;
  }
  return ids;
}

std::vector<int64_t> sample_speculative(models::LanguageModelImpl& model, SurplusProbeImpl& probe,
                                        std::vector<int64_t> ids, int64_t n, int64_t draft,
                                        const SamplingParams& sp, at::Generator& gen,
                                        SamplingStats* stats) {
  torch::NoGradGuard no_grad;
  const int64_t ctx = model.config().context;
  // No round drafts more than the context's free places, so a draft at or past the context is
  // the same as context - 1.
  TORCH_CHECK(draft >= 1, "draft length must be at least 1");
  if (n <= 0) return ids;
  const auto device = model.device();
  const int64_t V = sp.vocab > 0 ? sp.vocab : model.unembedding().size(0);
  const auto U = model.unembedding().slice(0, 0, V);
  const auto count = [&](int64_t calls, int64_t d, int64_t a) {
    if (!stats) return;
    stats->model_calls += calls;
    stats->drafted += d;
    stats->accepted += a;
  };

  // The first token comes from the model; h_prev is the hidden state that predicted it.
  const auto h0 = model.hidden(window(ids, ctx, device))[0];
  torch::Tensor h_prev = h0[-1];
  ids.push_back(draw_from(sampling_probs(model.logits(h_prev), sp), gen));
  count(1, 0, 0);
  int64_t made = 1;

  while (made < n) {
    // Row j of the verifying call must see everything before its token, as plain sampling's
    // window does: drafts only fill the context's free places (none once the text fills it,
    // where each token then takes one call).
    const int64_t room = std::max<int64_t>(0, ctx - static_cast<int64_t>(ids.size()));
    const int64_t k_max = std::min({draft, n - made - 1, room});
    // Draft: f_k = probe(f_{k-1}, e(token)), q_k = softmax(f_k U^T) under the same filtering.
    std::vector<int64_t> drafts;
    std::vector<torch::Tensor> q;
    auto f = h_prev;
    int64_t tok = ids.back();
    for (int64_t k = 0; k < k_max; ++k) {
      f = probe.feature(f, model.embed(torch::tensor({tok}, torch::kLong).to(device))[0]);
      q.push_back(sampling_probs(torch::matmul(f, U.t()), sp));
      tok = draw_from(q.back(), gen);
      drafts.push_back(tok);
    }
    // Verify all drafts with one model call; row j of h predicts the token after position j.
    std::vector<int64_t> extended = ids;
    extended.insert(extended.end(), drafts.begin(), drafts.end());
    const auto h = model.hidden(window(extended, ctx, device))[0];
    const int64_t last = h.size(0) - 1 - k_max;  // the row of the newest accepted token
    int64_t kept = 0;
    int64_t next = -1;
    for (int64_t k = 0; k < k_max; ++k) {
      const auto p = sampling_probs(model.logits(h[last + k]), sp);
      const double pk = p[drafts[k]].item<double>(), qk = q[k][drafts[k]].item<double>();
      if (uniform(gen) * qk < pk) {  // accept with probability min(1, p / q)
        ++kept;
        continue;
      }
      // Rejected: draw from the residual max(0, p - q), renormalised.
      auto residual = (p - q[k].to(p.scalar_type())).clamp_min(0.0);
      const double mass = residual.sum().item<double>();
      next = mass > 0 ? draw_from(residual / mass, gen) : draw_from(p, gen);
      break;
    }
    ids.insert(ids.end(), drafts.begin(), drafts.begin() + kept);
    h_prev = h[last + kept];
    if (next < 0) next = draw_from(sampling_probs(model.logits(h_prev), sp), gen);  // all kept
    ids.push_back(next);
    made += kept + 1;
    count(1, k_max, kept);
  }
  return ids;
}

}  // namespace stoch::generate
