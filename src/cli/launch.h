// `--nproc N`: runs this executable N times on this machine as the ranks of one data-parallel
// run, with the environment torchrun would give them (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT a free port). Each rank takes its share of
// run.threads (every core when 0). SIGINT/SIGTERM are passed on to every rank (which checkpoint
// together and exit 130/143); when a rank fails the others are stopped, and the launcher exits
// with the code of the first rank that exited non-zero (0 when all succeeded).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::cli {

// `args` are the ranks' arguments after the program name (the same command without --nproc).
int launch_local_ranks(int64_t nproc, const std::vector<std::string>& args);

// The ranks' arguments: `head` (the command without --nproc) followed by each --set.
std::vector<std::string> rank_args(std::vector<std::string> head,
                                   const std::vector<std::string>& sets);

// Refuses --nproc when this process already is one rank of a launched group.
void check_not_launched(int64_t nproc);

}  // namespace stoch::cli
