#include "value/targets.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace stoch::value {
namespace {

// float64 stays float64; everything else (half, bfloat16, integers) is computed in float32.
torch::ScalarType compute_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// project_linear as plain loops over CPU rows: a dozen small operators (search, gathers,
// two scatters) cost more than the arithmetic at DQN batch sizes.
template <class T>
void project_rows(const T* x, const T* w, const T* z, int64_t rows, int64_t k, int64_t m, T* out) {
  const T scale = static_cast<T>(m - 1) / (z[m - 1] - z[0]);
  for (int64_t r = 0; r < rows; ++r, x += k, w += k, out += m) {
    for (int64_t j = 0; j < k; ++j) {
      const T xc = std::min(std::max(x[j], z[0]), z[m - 1]);
      // The last atom at or below xc (searchsorted(right) - 1), kept within [0, m - 2]: guessed
      // as if the atoms were evenly spaced, then walked to the exact one.
      int64_t lo = static_cast<int64_t>((xc - z[0]) * scale);
      lo = std::min<int64_t>(std::max<int64_t>(lo, 0), m - 2);
      while (lo > 0 && z[lo] > xc) --lo;
      while (lo < m - 2 && z[lo + 1] <= xc) ++lo;
      const T frac = (xc - z[lo]) / (z[lo + 1] - z[lo]);
      out[lo] += w[j] * (1 - frac);
      out[lo + 1] += w[j] * frac;
    }
  }
}

// Splits each point x[..., k] carrying mass w[..., k] between its two neighbouring atoms of
// `support` [m] (linear interpolation weights), summing into [..., m]. Points outside the support
// are clamped onto its ends. Two-hot is the case k = 1, w = 1; C51 the case k = m.
torch::Tensor project_linear(const torch::Tensor& x, const torch::Tensor& w,
                             const torch::Tensor& support) {
  const int64_t m = support.size(0);
  if (x.is_cpu() && x.dim() >= 1 && x.sizes() == w.sizes() &&
      support.scalar_type() == x.scalar_type() &&
      (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble)) {
    const auto xs = x.contiguous(), ws = w.to(x.scalar_type()).contiguous();
    const auto zs = support.contiguous();
    auto sizes = x.sizes().vec();
    const int64_t k = sizes.back();
    sizes.back() = m;
    auto out = torch::zeros(sizes, x.options());
    const int64_t rows = k > 0 ? x.numel() / k : 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "project_linear", [&] {
      project_rows<scalar_t>(xs.data_ptr<scalar_t>(), ws.data_ptr<scalar_t>(),
                             zs.data_ptr<scalar_t>(), rows, k, m, out.data_ptr<scalar_t>());
    });
    return out;
  }
  const auto xc = torch::clamp(x, support[0], support[m - 1]);
  // The atom at or below x; the upper neighbour is always lo + 1 (lo <= m - 2), so a point on an
  // atom gives frac 0 (or 1 at the top atom) and needs no lower == upper special case.
  const auto lo =
      (torch::searchsorted(support, xc, /*out_int32=*/false, /*right=*/true) - 1).clamp(0, m - 2);
  const auto s_lo = support.take(lo);
  const auto frac = (xc - s_lo) / (support.take(lo + 1) - s_lo);
  auto sizes = x.sizes().vec();
  sizes.back() = m;
  auto out = torch::zeros(sizes, x.options());
  out.scatter_add_(-1, lo, w * (1 - frac));
  out.scatter_add_(-1, lo + 1, w * frac);
  return out;
}

// hl_gauss_targets as plain loops over CPU rows, in float64 whatever the output type: its dozen
// operators cost more than the arithmetic at DQN batch sizes. Rows of 64 targets are shared out
// over the intra-op threads (large supervised batches); each row's numbers do not depend on how.
// y [n], edges [m + 1] -> out [n, m].
template <class T>
void hl_gauss_rows(const T* y, int64_t n, const double* edges, int64_t m, double sigma, T* out) {
  const double scale = sigma * std::sqrt(2.0);
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    std::vector<double> u(static_cast<size_t>(m + 1)), p(static_cast<size_t>(m));
    for (int64_t i = begin; i < end; ++i) {
      const double yc = std::min(std::max(static_cast<double>(y[i]), edges[0]), edges[m]);
      for (int64_t j = 0; j <= m; ++j) {
        // erf is exactly +-1 in float64 beyond 6 (its tail is below half an ulp of 1), so only
        // the edges within about 6 sigma of y need it.
        const double a = (edges[j] - yc) / scale;
        u[j] = a <= -6.0 ? -1.0 : a >= 6.0 ? 1.0 : std::erf(a);
      }
      double total = 0.0;
      for (int64_t j = 0; j < m; ++j) total += p[j] = std::max(u[j + 1] - u[j], 0.0);
      for (int64_t j = 0; j < m; ++j) out[i * m + j] = static_cast<T>(p[j] / total);
    }
  });
}

torch::Tensor as_support(const torch::Tensor& s, const torch::Tensor& like, const char* what) {
  TORCH_CHECK(s.dim() == 1 && s.size(0) >= 2, what, " must be 1-D with at least 2 entries, got ",
              s.sizes());
  return s.to(like.device(), like.scalar_type()).contiguous();
}

}  // namespace

torch::Tensor bin_edges(double v_min, double v_max, int64_t m, const torch::TensorOptions& opts) {
  TORCH_CHECK(m >= 1 && v_min < v_max, "bin_edges: need m >= 1 and v_min < v_max, got m=", m,
              " on [", v_min, ", ", v_max, "]");
  // linspace pins both ends exactly; float64 keeps interior edges exact to the output dtype.
  return torch::linspace(v_min, v_max, m + 1, torch::kFloat64).to(opts);
}

torch::Tensor bin_centres(double v_min, double v_max, int64_t m, const torch::TensorOptions& opts) {
  const auto e = bin_edges(v_min, v_max, m, torch::kFloat64);
  return ((e.narrow(0, 0, m) + e.narrow(0, 1, m)) / 2).to(opts);
}

torch::Tensor two_hot_targets(const torch::Tensor& y, const torch::Tensor& support) {
  torch::NoGradGuard no_grad;
  const auto yf = y.to(compute_type(y)).unsqueeze(-1);
  return project_linear(yf, torch::ones_like(yf), as_support(support, yf, "two_hot support"));
}

torch::Tensor hl_gauss_targets(const torch::Tensor& y, const torch::Tensor& edges, double sigma) {
  TORCH_CHECK(sigma > 0 && std::isfinite(sigma), "hl_gauss_targets: sigma must be > 0, got ",
              sigma);
  torch::NoGradGuard no_grad;
  const auto yf = y.to(compute_type(y));
  // Far outside the support every erf saturates to the same +-1 and the normaliser is 0/0:
  // y is clamped onto the support first.
  if (yf.is_cpu() && edges.is_cpu()) {
    TORCH_CHECK(edges.dim() == 1 && edges.size(0) >= 2,
                "hl_gauss edges must be 1-D with at least 2 entries, got ", edges.sizes());
    const int64_t m = edges.size(0) - 1;
    const auto e64 = edges.to(torch::kFloat64).contiguous();
    const auto yc = yf.contiguous();
    auto sizes = yc.sizes().vec();
    sizes.push_back(m);
    auto out = torch::empty(sizes, yc.options());
    AT_DISPATCH_FLOATING_TYPES(yc.scalar_type(), "hl_gauss_targets", [&] {
      hl_gauss_rows<scalar_t>(yc.data_ptr<scalar_t>(), yc.numel(), e64.data_ptr<double>(), m, sigma,
                              out.data_ptr<scalar_t>());
    });
    return out;
  }
  const auto e = as_support(edges, yf, "hl_gauss edges");
  const int64_t m = e.size(0) - 1;
  const auto yc = torch::clamp(yf, e[0], e[m]).unsqueeze(-1);
  const auto u = torch::erf((e - yc) / (sigma * std::sqrt(2.0)));
  // erf differences are >= 0 in exact arithmetic; the clamp guards against a rounding sign flip,
  // and dividing by the sum (rather than u_m - u_0) makes the result sum to 1 in the output dtype.
  const auto p = (u.narrow(-1, 1, m) - u.narrow(-1, 0, m)).clamp_min(0);
  return p / p.sum(-1, /*keepdim=*/true);
}

torch::Tensor one_hot_targets(const torch::Tensor& y, const torch::Tensor& edges) {
  torch::NoGradGuard no_grad;
  const auto yf = y.to(compute_type(y));
  const auto e = as_support(edges, yf, "one_hot edges");
  const int64_t m = e.size(0) - 1;
  // The number of inner edges at or below y is the bin's index.
  const auto inner = e.narrow(0, 1, m - 1).contiguous();
  const auto bin = torch::searchsorted(inner, yf.contiguous(), /*out_int32=*/false, /*right=*/true);
  return torch::one_hot(bin, m).to(yf.scalar_type());
}

torch::Tensor c51_project(const torch::Tensor& next_probs, const torch::Tensor& rewards,
                          const torch::Tensor& discounts, const torch::Tensor& atoms) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(next_probs.dim() == 2, "c51_project: next_probs must be [B, m], got ",
              next_probs.sizes());
  const int64_t b = next_probs.size(0);
  TORCH_CHECK(
      rewards.dim() == 1 && rewards.size(0) == b && discounts.dim() == 1 && discounts.size(0) == b,
      "c51_project: rewards and discounts must be [", b, "], got ", rewards.sizes(), " and ",
      discounts.sizes());
  const auto p = next_probs.to(compute_type(next_probs));
  const auto z = as_support(atoms, p, "c51 atoms");
  TORCH_CHECK(z.size(0) == p.size(1), "c51_project: ", p.size(1), " probabilities per row but ",
              z.size(0), " atoms");
  const auto r = rewards.to(p.options()).unsqueeze(1);
  const auto d = discounts.to(p.options()).unsqueeze(1);
  return project_linear(r + d * z.unsqueeze(0), p, z);
}

torch::Tensor muzero_h(const torch::Tensor& x, double eps) {
  torch::NoGradGuard no_grad;
  const auto xf = x.to(compute_type(x));
  const auto a = xf.abs();
  // sqrt(a + 1) - 1 written as a / (sqrt(a + 1) + 1): no cancellation for small |x|.
  return torch::sign(xf) * a / (torch::sqrt(a + 1) + 1) + eps * xf;
}

torch::Tensor muzero_h_inverse(const torch::Tensor& x, double eps) {
  TORCH_CHECK(eps >= 0, "muzero_h_inverse: eps must be >= 0, got ", eps);
  torch::NoGradGuard no_grad;
  const auto xf = x.to(compute_type(x));
  const auto y = xf.abs();
  // h(t) = y with z = sqrt(t + 1) solves eps z^2 + z - (1 + eps + y) = 0, so t = (z - 1)(z + 1).
  // The textbook root (sqrt(1 + 4 eps (1 + eps + y)) - 1) / (2 eps) loses most float32 digits
  // for small eps and y; with q = 1 + 2 eps and s = sqrt(q^2 + 4 eps y) the same root and z - 1
  // are sums of positive terms (and stay exact at eps = 0).
  const double q = 1 + 2 * eps;
  const auto s = torch::sqrt(q * q + 4 * eps * y);
  const auto z = 2 * (1 + eps + y) / (s + 1);
  const auto z_minus_1 = 2 * y * (1 - 2 * eps / (q + s)) / (s + 1);
  return torch::sign(xf) * z_minus_1 * (z + 1);
}

torch::Tensor symlog(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const auto xf = x.to(compute_type(x));
  return torch::sign(xf) * torch::log1p(xf.abs());
}

torch::Tensor symexp(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const auto xf = x.to(compute_type(x));
  return torch::sign(xf) * torch::expm1(xf.abs());
}

}  // namespace stoch::value
