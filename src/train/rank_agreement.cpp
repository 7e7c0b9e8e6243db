#include "train/rank_agreement.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "core/config_tree.h"
#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {

void check_configs_agree(const std::vector<std::string>& configs,
                         const std::vector<std::string>& who) {
  const auto leaves_of = [&](size_t r) {
    return config::leaves(config::parse_text(configs[r], stoch::str("the config of ", who[r])));
  };
  const auto base = leaves_of(0);
  for (size_t r = 1; r < configs.size(); ++r) {
    if (configs[r] == configs[0]) continue;
    const auto other = leaves_of(r);
    const auto d = config::first_difference(base, other);
    if (!d) continue;  // the same leaves, written otherwise
    throw InputError(stoch::str("config differs between ranks: ", d->key, " is ", d->a, " on ",
                                who[0], " but ", d->b, " on ", who[r],
                                "; start every rank with the same config"));
  }
}

void check_data_agrees(const std::vector<std::string>& facts, const std::vector<std::string>& who) {
  // Whole numbers (counts, checksums) exactly; others to 1e-9, since hosts with other CPUs round
  // a vectorised sum or a libm call differently.
  const auto same = [](const std::string& x, const std::string& y) {
    if (x == y) return true;
    const auto cut_x = x.rfind(' '), cut_y = y.rfind(' ');
    if (cut_x == std::string::npos || x.substr(0, cut_x) != y.substr(0, cut_y)) return false;
    const double u = std::strtod(x.c_str() + cut_x + 1, nullptr),
                 v = std::strtod(y.c_str() + cut_y + 1, nullptr);
    if (u == std::floor(u) && v == std::floor(v)) return false;
    return std::fabs(u - v) <= 1e-9 * std::max(std::fabs(u), std::fabs(v));
  };
  for (size_t r = 1; r < facts.size(); ++r) {
    if (facts[r] == facts[0]) continue;
    const auto a = split(facts[0], '\n'), b = split(facts[r], '\n');
    size_t i = 0;
    while (i < a.size() && i < b.size() && same(a[i], b[i])) ++i;
    if (i == a.size() && i == b.size()) continue;
    const auto line = [&](const std::vector<std::string>& l) {
      return i < l.size() && !l[i].empty() ? l[i] : std::string("(none)");  // text ends in \n
    };
    throw InputError(stoch::str("data differs between ranks with the same config: ", line(a),
                                " on ", who[0], " but ", line(b), " on ", who[r],
                                "; every rank must read the same files (a relative data path is "
                                "read from each rank's current directory)"));
  }
}

}  // namespace stoch::train
