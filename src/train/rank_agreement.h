// What the ranks of a data-parallel run compare when they meet: their resolved configs and
// their data facts. Plain C++ on strings, so the rules are tested without starting ranks.
#pragma once

#include <string>
#include <vector>

namespace stoch::train {

// Throws InputError naming the first key (in sorted order) where rank r's resolved config
// (`configs[r]`, config.yaml text) differs from rank 0's; `who[r]` names rank r.
void check_configs_agree(const std::vector<std::string>& configs,
                         const std::vector<std::string>& who);

// Throws InputError naming the first data fact ("key value" lines) where rank r's data differs
// from rank 0's: the configs agree by then, so the files behind them differ. Whole numbers
// (counts, checksums) must match exactly, other numbers to 1e-9 relative.
void check_data_agrees(const std::vector<std::string>& facts, const std::vector<std::string>& who);

}  // namespace stoch::train
