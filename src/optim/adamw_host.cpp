#include "optim/adamw_host.h"

#include <cmath>

#include "core/cpu_isa.h"

namespace stoch::optim {

AdamWStep adamw_step_constants(double lr, double beta1, double beta2, double eps,
                               double weight_decay, double t) {
  AdamWStep c;
  c.decay = static_cast<float>(1.0 - lr * weight_decay);
  c.beta1 = static_cast<float>(beta1);
  c.beta2 = static_cast<float>(beta2);
  c.eps = static_cast<float>(eps);
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
  c.inv_bias2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
  return c;
}

namespace {

// One clone of the update: GCC vectorises the loop at the clone's width.
struct UpdateKernel {
  template <class Isa>
  STOCH_ALWAYS_INLINE static void run(float* __restrict p, const float* __restrict g,
                                      float* __restrict m, float* __restrict v, int64_t n,
                                      const AdamWStep* c) {
    const float decay = c->decay, b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float one_b1 = 1.0f - b1, one_b2 = 1.0f - b2;
    const float step_size = c->step_size, inv_bias2 = c->inv_bias2;
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + one_b1 * gi;
      const float vi = b2 * v[i] + one_b2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_bias2 + eps);
    }
  }
};

}  // namespace

void adamw_host_update(float* p, const float* g, float* m, float* v, int64_t n,
                       const AdamWStep& c) {
  dispatch_isa<UpdateKernel>(p, g, m, v, n, &c);
}

bool adamw_host_preferred(CpuIsa isa) {
  return isa != CpuIsa::kPortable;
}

}  // namespace stoch::optim
