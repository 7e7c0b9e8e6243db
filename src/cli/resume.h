// `stoch resume`, for the commands that continue a run themselves (train under a torchrun
// restart).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::cli {

// Continues the run in run_dir from its newest complete checkpoint, as `stoch resume RUN_DIR
// --set ... --nproc N` does; returns the exit code.
int resume_run(const std::string& run_dir, const std::vector<std::string>& sets, int64_t nproc);

}  // namespace stoch::cli
