#include "models/language_model.h"

namespace stoch::models {

int64_t LmConfig::parameter_count() const {
  return registry<LmArchEntry>().get(arch, "model.arch").parameter_count(*this);
}

std::shared_ptr<LanguageModelImpl> make_language_model(const LmConfig& cfg) {
  return registry<LmArchEntry>().get(cfg.arch, "model.arch").make(cfg);
}

}  // namespace stoch::models
