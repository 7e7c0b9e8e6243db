// Included last by the classic-control environments: Gymnasium's float64 arithmetic rounds every
// product and sum, and a fused multiply-add (which -march=native builds may emit) would change
// the trajectories' last bits. It turns contraction off for the rest of the including file, so
// no other header should include it.
#pragma once

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
