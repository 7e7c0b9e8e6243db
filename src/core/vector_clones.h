// STOCH_VECTOR_CLONES compiles a function for AVX-512, AVX2 and the baseline, and the loader
// picks the best the CPU has (GCC on x86-64; elsewhere one plain build): portable binaries whose
// hand-written loops still use the machine's full vector width. Files that use it are built with
// -ffp-contract=off (CMakeLists.txt), so every clone, and its scalar tail, rounds alike.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STOCH_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STOCH_VECTOR_CLONES
#endif
